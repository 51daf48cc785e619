<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>BudgetBar</name>
    <message>
        <location filename="../../gui/budget_bar.py" line="78"/>
        <source>Token budget: waiting for the model</source>
        <translation>令牌预算：等待模型加载</translation>
    </message>
    <message>
        <location filename="../../gui/budget_bar.py" line="84"/>
        <source>Prompt {p} + max new {n} of MAX_SEQ_LEN {m} tokens</source>
        <translation>提示 {p} + 最多新生成 {n}，上限 MAX_SEQ_LEN {m} 个令牌</translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/budget_bar.py" line="87"/>
        <source>%n old round(s) will be dropped</source>
        <translation>
            <numerusform>将丢弃 %n 轮较早的对话</numerusform>
        </translation>
    </message>
</context>
<context>
    <name>ChatController</name>
    <message>
        <location filename="../../gui/chat_controller.py" line="216"/>
        <source>Waiting for the model to load…</source>
        <translation>正在等待模型加载…</translation>
    </message>
    <message>
        <location filename="../../gui/chat_controller.py" line="218"/>
        <source>Generating… (streaming is off)</source>
        <translation>正在生成…（流式输出已关闭）</translation>
    </message>
</context>
<context>
    <name>ChatView</name>
    <message>
        <location filename="../../gui/chat_view.py" line="56"/>
        <source>Start the conversation below.
Enter sends · Shift+Enter adds a line · Esc stops the answer</source>
        <translation>在下方开始对话。
Enter 发送 · Shift+Enter 换行 · Esc 停止回答</translation>
    </message>
</context>
<context>
    <name>ConversationList</name>
    <message>
        <location filename="../../gui/conversation_list.py" line="52"/>
        <source>Baichuan Chat</source>
        <translation>百川对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="53"/>
        <source>+  New conversation</source>
        <translation>+  新对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="54"/>
        <source>Search conversations</source>
        <translation>搜索对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="87"/>
        <source>Rename conversation</source>
        <translation>重命名对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="87"/>
        <source>Title:</source>
        <translation>标题：</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="94"/>
        <source>Delete conversation</source>
        <translation>删除对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="95"/>
        <source>Delete “{title}” and all its messages?</source>
        <translation>删除“{title}”及其全部消息？</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="109"/>
        <source>Rename…</source>
        <translation>重命名…</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py" line="110"/>
        <source>Delete…</source>
        <translation>删除…</translation>
    </message>
</context>
<context>
    <name>LoadStatus</name>
    <message>
        <location filename="../../gui/model_dialog.py" line="99"/>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="114"/>
        <source>Loading model: {message}</source>
        <translation>正在加载模型：{message}</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../../main_window.py" line="0"/>
        <source>Compute: {path}</source>
        <translation>计算路径：{path}</translation>
    </message>
    <message>
        <location filename="../../main_window.py" line="0"/>
        <source>Version {version}</source>
        <translation>版本 {version}</translation>
    </message>
    <message>
        <location filename="../../main_window.py" line="0"/>
        <source>Log file: {path}</source>
        <translation>日志文件：{path}</translation>
    </message>
    <message>
        <location filename="../../main_window.py" line="0"/>
        <source>Log file: none (not writable)</source>
        <translation>日志文件：无（无法写入）</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="122"/>
        <source>The answer failed</source>
        <translation>回答失败</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="150"/>
        <source>Baichuan Chat</source>
        <translation>百川对话</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="151"/>
        <source>Message the model…  (Enter sends, Shift+Enter for a new line)</source>
        <translation>给模型发消息…（Enter 发送，Shift+Enter 换行）</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="152"/>
        <source>Editing a message: Enter resends it and drops the answers after it; Esc cancels</source>
        <translation>正在编辑消息：Enter 重新发送并删除其后的回答；Esc 取消</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="165"/>
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="165"/>
        <source>Send</source>
        <translation>发送</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="180"/>
        <source>{name} on {device} ({dtype}) · MAX_SEQ_LEN {n}</source>
        <translation>{name}，运行于 {device}（{dtype}）· MAX_SEQ_LEN {n}</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="185"/>
        <source>Loading model…</source>
        <translation>正在加载模型…</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="188"/>
        <source>No model loaded</source>
        <translation>未加载模型</translation>
    </message>
    <message>
        <location filename="../../gui/app.py" line="51"/>
        <location filename="../../gui/main_window.py" line="211"/>
        <source>Something went wrong</source>
        <translation>出错了</translation>
    </message>
    <message>
        <location filename="../../gui/app.py" line="78"/>
        <source>History</source>
        <translation>历史记录</translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/app.py" line="80"/>
        <source>%n interrupted answer(s) recovered from the last session</source>
        <translation>
            <numerusform>已从上次会话恢复 %n 条中断的回答</numerusform>
        </translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="227"/>
        <source>Loading was cancelled</source>
        <translation>已取消加载</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="230"/>
        <source>The model could not be loaded</source>
        <translation>无法加载模型</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="253"/>
        <source>There is nothing to export yet: this conversation is empty.</source>
        <translation>暂无可导出的内容：此对话为空。</translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/main_window.py" line="257"/>
        <source>Exported %n conversation(s) to {path}</source>
        <translation>
            <numerusform>已导出 %n 个对话到 {path}</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/main_window.py" line="264"/>
        <source>Imported %n conversation(s)</source>
        <translation>
            <numerusform>已导入 %n 个对话</numerusform>
        </translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="275"/>
        <source>Markdown (*.md)</source>
        <translation>Markdown (*.md)</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="275"/>
        <location filename="../../gui/main_window.py" line="281"/>
        <source>JSON (*.json)</source>
        <translation>JSON (*.json)</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="276"/>
        <source>Export</source>
        <translation>导出</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="281"/>
        <source>Import conversations</source>
        <translation>导入对话</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="298"/>
        <source>About Baichuan Chat</source>
        <translation>关于百川对话</translation>
    </message>
    <message>
        <location filename="../../gui/main_window.py" line="299"/>
        <source>A desktop chat for Baichuan2-7B-Chat / 13B-Chat running on this computer (CPU, CUDA or Ascend NPU).</source>
        <translation>在本机（CPU、CUDA 或昇腾 NPU）上运行 Baichuan2-7B-Chat / 13B-Chat 的桌面对话应用。</translation>
    </message>
</context>
<context>
    <name>Menus</name>
    <message>
        <location filename="../../gui/menus.py" line="69"/>
        <source>&amp;File</source>
        <translation>文件(&amp;F)</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="70"/>
        <source>&amp;Model</source>
        <translation>模型(&amp;M)</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="71"/>
        <source>&amp;View</source>
        <translation>视图(&amp;V)</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="72"/>
        <source>&amp;Help</source>
        <translation>帮助(&amp;H)</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="73"/>
        <source>Export</source>
        <translation>导出</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="74"/>
        <source>Language</source>
        <translation>语言</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="75"/>
        <source>Theme</source>
        <translation>主题</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="77"/>
        <source>New conversation</source>
        <translation>新对话</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="78"/>
        <source>This conversation as Markdown…</source>
        <translation>当前对话为 Markdown…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="79"/>
        <source>This conversation as JSON…</source>
        <translation>当前对话为 JSON…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="80"/>
        <source>All conversations as Markdown…</source>
        <translation>全部对话为 Markdown…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="81"/>
        <source>All conversations as JSON…</source>
        <translation>全部对话为 JSON…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="82"/>
        <source>Import JSON…</source>
        <translation>导入 JSON…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="83"/>
        <source>Quit</source>
        <translation>退出</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="84"/>
        <source>Open model folder…</source>
        <translation>打开模型文件夹…</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="85"/>
        <source>Load demo model</source>
        <translation>加载演示模型</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="86"/>
        <source>Cancel loading</source>
        <translation>取消加载</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="87"/>
        <source>System language</source>
        <translation>跟随系统语言</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="88"/>
        <source>Follow system</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="89"/>
        <source>Light</source>
        <translation>浅色</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="90"/>
        <source>Dark</source>
        <translation>深色</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="91"/>
        <source>Settings panel</source>
        <translation>设置面板</translation>
    </message>
    <message>
        <location filename="../../gui/menus.py" line="92"/>
        <source>About Baichuan Chat</source>
        <translation>关于百川对话</translation>
    </message>
</context>
<context>
    <name>MessageWidget</name>
    <message>
        <location filename="../../gui/message_widget.py" line="122"/>
        <location filename="../../gui/message_widget.py" line="127"/>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="124"/>
        <source>Edit</source>
        <translation>编辑</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="126"/>
        <source>Regenerate</source>
        <translation>重新生成</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="201"/>
        <source>Assistant</source>
        <translation>助手</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="202"/>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="202"/>
        <source>interrupted</source>
        <translation>已中断</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="203"/>
        <source>error</source>
        <translation>出错</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py" line="213"/>
        <source>TTFT {ttft} · decode {decode} · {tokens}</source>
        <translation>首令牌 {ttft} · 解码 {decode} · {tokens}</translation>
    </message>
</context>
<context>
    <name>Metrics</name>
    <message>
        <location filename="../../gui/speed_plot.py" line="22"/>
        <source> ({n} cached)</source>
        <translation>（缓存 {n}）</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="24"/>
        <source>{v} s</source>
        <translation>{v} 秒</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="25"/>
        <location filename="../../gui/speed_plot.py" line="26"/>
        <source>{v} tok/s</source>
        <translation>{v} 令牌/秒</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="27"/>
        <location filename="../../gui/speed_plot.py" line="156"/>
        <source>{p} in · {o} out</source>
        <translation>输入 {p} · 输出 {o}</translation>
    </message>
</context>
<context>
    <name>ModelBanner</name>
    <message>
        <location filename="../../gui/model_dialog.py" line="148"/>
        <source>Open model folder…</source>
        <translation>打开模型文件夹…</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="149"/>
        <source>Load demo model</source>
        <translation>加载演示模型</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="153"/>
        <source>&lt;b&gt;Demo model:&lt;/b&gt; you are chatting with {name}, a small demo model (135 M parameters) — its answers are short and often wrong. To chat with Baichuan2, download Baichuan2-7B-Chat and choose &lt;b&gt;Model → Open model folder…&lt;/b&gt;</source>
        <translation>&lt;b&gt;演示模型：&lt;/b&gt;你正在与 {name} 对话，这是一个小型演示模型（1.35 亿参数），回答简短且常常出错。要与百川2对话，请下载 Baichuan2-7B-Chat，然后选择&lt;b&gt;模型 → 打开模型文件夹…&lt;/b&gt;</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="158"/>
        <source>&lt;b&gt;No model is loaded.&lt;/b&gt; Open a Baichuan2 folder or load the small demo model.</source>
        <translation>&lt;b&gt;未加载模型。&lt;/b&gt;请打开百川2模型文件夹，或加载小型演示模型。</translation>
    </message>
</context>
<context>
    <name>ModelDialog</name>
    <message>
        <source>Quantize</source>
        <translation>量化</translation>
    </message>
    <message>
        <source>Devices (tensor parallel)</source>
        <translation>设备数（张量并行）</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="51"/>
        <source>Open model folder</source>
        <translation>打开模型文件夹</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="52"/>
        <source>Folder</source>
        <translation>文件夹</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="52"/>
        <source>Device</source>
        <translation>设备</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="52"/>
        <source>Dtype</source>
        <translation>数据类型</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="53"/>
        <source>MAX_SEQ_LEN</source>
        <translation>MAX_SEQ_LEN</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="55"/>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="56"/>
        <source>A Baichuan2-7B-Chat or 13B-Chat folder</source>
        <translation>Baichuan2-7B-Chat 或 13B-Chat 文件夹</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="57"/>
        <source>model maximum</source>
        <translation>模型最大值</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="58"/>
        <source>Load</source>
        <translation>加载</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="60"/>
        <source>The folder holds config.json, tokenizer.model and the weights (*.bin or *.safetensors). Code files in it are never run. Ascend 300I Duo: choose npu and float16.</source>
        <translation>文件夹中应包含 config.json、tokenizer.model 和权重（*.bin 或 *.safetensors）。其中的代码文件永远不会被执行。昇腾 300I Duo：请选择 npu 和 float16。</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py" line="64"/>
        <source>Choose a model folder</source>
        <translation>选择模型文件夹</translation>
    </message>
</context>
<context>
    <name>SettingsPanel</name>
    <message>
        <location filename="../../gui/settings_panel.py" line="92"/>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="94"/>
        <source>System prompt</source>
        <translation>系统提示词</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="94"/>
        <source>Max new tokens</source>
        <translation>最大新令牌数</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="95"/>
        <source>Temperature</source>
        <translation>温度</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="95"/>
        <source>Top-k</source>
        <translation>Top-k</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="96"/>
        <source>Top-p</source>
        <translation>Top-p</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="96"/>
        <source>Rep. penalty</source>
        <translation>重复惩罚</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="96"/>
        <source>Seed</source>
        <translation>随机种子</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="100"/>
        <source>Sample tokens (uncheck for greedy decoding)</source>
        <translation>随机采样（取消勾选为贪心解码）</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="101"/>
        <source>Stream tokens as they arrive</source>
        <translation>流式显示生成的令牌</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="102"/>
        <source>random</source>
        <translation>随机</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="103"/>
        <source>Optional instructions for the model</source>
        <translation>可选：给模型的指令</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="104"/>
        <source>Reset to model defaults</source>
        <translation>恢复模型默认值</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="124"/>
        <source>No model loaded</source>
        <translation>未加载模型</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="125"/>
        <source>MAX_SEQ_LEN: —</source>
        <translation>MAX_SEQ_LEN：—</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="128"/>
        <source>{name} · {device} · {dtype}</source>
        <translation>{name} · {device} · {dtype}</translation>
    </message>
    <message>
        <location filename="../../gui/settings_panel.py" line="130"/>
        <source>MAX_SEQ_LEN: {n}</source>
        <translation>MAX_SEQ_LEN：{n}</translation>
    </message>
</context>
<context>
    <name>SpeedPanel</name>
    <message>
        <location filename="../../gui/speed_plot.py" line="132"/>
        <source>Last answer</source>
        <translation>上一条回答</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="133"/>
        <source>Time to first token</source>
        <translation>首令牌延迟</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="133"/>
        <source>Prefill</source>
        <translation>预填充</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="134"/>
        <source>Decode</source>
        <translation>解码</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="134"/>
        <source>Tokens</source>
        <translation>令牌数</translation>
    </message>
</context>
<context>
    <name>SpeedPlot</name>
    <message>
        <location filename="../../gui/speed_plot.py" line="63"/>
        <source>decode tok/s appears here</source>
        <translation>解码速度（令牌/秒）显示在这里</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="69"/>
        <source>decode tok/s · peak {v:.1f}</source>
        <translation>解码 令牌/秒 · 峰值 {v:.1f}</translation>
    </message>
    <message>
        <location filename="../../gui/speed_plot.py" line="72"/>
        <source>{n} tokens</source>
        <translation>{n} 个令牌</translation>
    </message>
</context>
<context>
    <name>InputBox</name>
    <message numerus="yes">
        <location filename="../../gui/input_box.py"/>
        <source>At most %n files can be attached to one message.</source>
        <translation>
            <numerusform>一条消息最多可附加 %n 个文件。</numerusform>
        </translation>
    </message>
</context>
<context>
    <name>AttachmentBar</name>
    <message>
        <location filename="../../gui/attachment_bar.py"/>
        <source>Attach text, Markdown, code or PDF files (Ctrl+U, or drop them on the input)</source>
        <translation>附加文本、Markdown、代码或 PDF 文件（Ctrl+U，或拖放到输入框）</translation>
    </message>
    <message>
        <location filename="../../gui/attachment_bar.py"/>
        <source>Remove this attachment</source>
        <translation>移除此附件</translation>
    </message>
    <message>
        <location filename="../../gui/attachment_bar.py"/>
        <source>Attach files</source>
        <translation>附加文件</translation>
    </message>
    <message>
        <location filename="../../gui/attachment_bar.py"/>
        <source>Text, code and PDF files ({patterns});;All files (*)</source>
        <translation>文本、代码和 PDF 文件 ({patterns});;所有文件 (*)</translation>
    </message>
    <message>
        <location filename="../../gui/attachment_bar.py"/>
        <source>Attach files to the message</source>
        <translation>为消息附加文件</translation>
    </message>
</context>
<context>
    <name>BudgetBar</name>
    <message>
        <location filename="../../gui/budget_bar.py"/>
        <source>{name} ({tokens} tokens) does not fit: with {new} max new tokens, the prompt can hold {room} of MAX_SEQ_LEN {m} tokens and this message needs {cut} more. Remove the file, shorten the message or lower Max new tokens; attachments are never cut.</source>
        <translation>{name}（{tokens} 个令牌）放不下：最多新生成 {new} 个令牌时，提示最多可用 MAX_SEQ_LEN {m} 中的 {room} 个令牌，这条消息还差 {cut} 个。请移除该文件、缩短消息或调低“最多新令牌”；附件不会被截断。</translation>
    </message>
    <message>
        <location filename="../../gui/budget_bar.py"/>
        <source>{name} {tokens} tokens</source>
        <translation>{name} {tokens} 个令牌</translation>
    </message>
    <message>
        <location filename="../../gui/budget_bar.py"/>
        <source>Attachments: {files}</source>
        <translation>附件：{files}</translation>
    </message>
</context>
<context>
    <name>ModelDialog</name>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>recent</source>
        <translation>最近打开</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Hugging Face cache</source>
        <translation>Hugging Face 缓存</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Looking for model folders on this computer…</source>
        <translation>正在查找本机上的模型文件夹…</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Model folders on this computer (✓ fits in the memory free now, ✗ does not; at the model's MAX_SEQ_LEN):</source>
        <translation>本机上的模型文件夹（✓ 当前空闲内存放得下，✗ 放不下；按模型的 MAX_SEQ_LEN 计算）：</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>No Baichuan folders were found among the recent folders or in the Hugging Face cache.</source>
        <translation>在最近打开的文件夹和 Hugging Face 缓存中没有找到百川模型文件夹。</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Variant</source>
        <translation>型号</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Size</source>
        <translation>大小</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Memory needed (fits?)</source>
        <translation>所需内存（放得下？）</translation>
    </message>
    <message>
        <location filename="../../gui/model_dialog.py"/>
        <source>Where</source>
        <translation>位置</translation>
    </message>
</context>
<context>
    <name>FindBar</name>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>Find in the conversation</source>
        <translation>在对话中查找</translation>
    </message>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>Previous match (Shift+Enter)</source>
        <translation>上一个匹配（Shift+Enter）</translation>
    </message>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>Next match (Enter)</source>
        <translation>下一个匹配（Enter）</translation>
    </message>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>Close (Esc)</source>
        <translation>关闭（Esc）</translation>
    </message>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>No matches</source>
        <translation>无匹配</translation>
    </message>
    <message>
        <location filename="../../gui/find_bar.py"/>
        <source>{current} of {total}</source>
        <translation>第 {current} 个，共 {total} 个</translation>
    </message>
</context>
<context>
    <name>ConversationList</name>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Pinned</source>
        <translation>置顶</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Today</source>
        <translation>今天</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Yesterday</source>
        <translation>昨天</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Previous 7 days</source>
        <translation>过去 7 天</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Previous 30 days</source>
        <translation>过去 30 天</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Delete conversations</source>
        <translation>删除对话</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Pin</source>
        <translation>置顶</translation>
    </message>
    <message>
        <location filename="../../gui/conversation_list.py"/>
        <source>Unpin</source>
        <translation>取消置顶</translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/conversation_list.py"/>
        <source>Delete %n conversation(s) and all their messages?</source>
        <translation><numerusform>删除 %n 个对话及其全部消息？</numerusform></translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/conversation_list.py"/>
        <source>Delete %n conversation(s)…</source>
        <translation><numerusform>删除 %n 个对话…</numerusform></translation>
    </message>
</context>
<context>
    <name>VersionSwitcher</name>
    <message>
        <location filename="../../gui/message_widget.py"/>
        <source>branch</source>
        <translation>分支</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py"/>
        <source>Previous branch</source>
        <translation>上一个分支</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py"/>
        <source>Next branch</source>
        <translation>下一个分支</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py"/>
        <source>Previous version</source>
        <translation>上一个版本</translation>
    </message>
    <message>
        <location filename="../../gui/message_widget.py"/>
        <source>Next version</source>
        <translation>下一个版本</translation>
    </message>
</context>
<context>
    <name>PresetPicker</name>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Custom settings</source>
        <translation>自定义设置</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Presets: named settings (system prompt, sampling, max new tokens)</source>
        <translation>预设：命名的设置（系统提示词、采样、最大新 token 数）</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Save, delete, or make this preset the one new conversations start from</source>
        <translation>保存、删除此预设，或设为新对话的默认预设</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Save as preset…</source>
        <translation>另存为预设…</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Delete preset…</source>
        <translation>删除预设…</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Make default (for new conversations)</source>
        <translation>设为默认（用于新对话）</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Precise (greedy)</source>
        <translation>精确（贪心）</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Balanced (model defaults)</source>
        <translation>均衡（模型默认）</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Creative</source>
        <translation>创意</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>{name} (default)</source>
        <translation>{name}（默认）</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Save as preset</source>
        <translation>另存为预设</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Preset name:</source>
        <translation>预设名称：</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Replace the preset “{name}”?</source>
        <translation>替换预设“{name}”？</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Delete preset</source>
        <translation>删除预设</translation>
    </message>
    <message>
        <location filename="../../gui/preset_picker.py"/>
        <source>Delete the preset “{name}”?</source>
        <translation>删除预设“{name}”？</translation>
    </message>
</context>
<context>
    <name>SettingsPanel</name>
    <message>
        <location filename="../../gui/settings_panel.py"/>
        <source>Preset</source>
        <translation>预设</translation>
    </message>
</context>
<context>
    <name>Menus</name>
    <message>
        <location filename="../../gui/menus.py"/>
        <source>Keyboard shortcuts</source>
        <translation>键盘快捷键</translation>
    </message>
</context>
<context>
    <name>ShortcutsDialog</name>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Stop the answer, or cancel editing a message</source>
        <translation>停止回答，或取消编辑消息</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Send the message</source>
        <translation>发送消息</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>New line in the message</source>
        <translation>在消息中换行</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Delete the selected conversations (in the list)</source>
        <translation>删除所选对话（在列表中）</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Keyboard shortcuts</source>
        <translation>键盘快捷键</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Keys</source>
        <translation>按键</translation>
    </message>
    <message>
        <location filename="../../gui/shortcuts_dialog.py"/>
        <source>Action</source>
        <translation>操作</translation>
    </message>
</context>
<context>
    <name>ConnectDialog</name>
    <message>
        <source>Asking {url} for its models…</source>
        <translation>正在向 {url} 获取模型列表…</translation>
    </message>
    <message>
        <source>Connect to server</source>
        <translation>连接到服务器</translation>
    </message>
    <message>
        <source>Chat with a model served by vLLM, vllm-ascend, MindIE, llama.cpp's server or another Baichuan Chat, through their OpenAI-compatible API. The model loaded in this window is released once connected.</source>
        <translation>通过与 OpenAI 兼容的 API，与 vLLM、vllm-ascend、MindIE、llama.cpp 服务器或另一个百川聊天提供的模型对话。连接成功后，本窗口已加载的模型将被释放。</translation>
    </message>
    <message>
        <source>Server URL</source>
        <translation>服务器地址</translation>
    </message>
    <message>
        <source>API key</source>
        <translation>API 密钥</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>none</source>
        <translation>无</translation>
    </message>
    <message>
        <source>Remember the key (stored on this computer in plain text)</source>
        <translation>记住密钥（以明文保存在本机）</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>刷新</translation>
    </message>
    <message>
        <source>Connect</source>
        <translation>连接</translation>
    </message>
    <message numerus="yes">
        <source>The server serves %n model(s).</source>
        <translation><numerusform>该服务器提供 %n 个模型。</numerusform></translation>
    </message>
</context>
<context>
    <name>LocalServer</name>
    <message>
        <source>Set an API key first: other computers may only connect with one.</source>
        <translation>请先设置 API 密钥：其他计算机只能凭密钥连接。</translation>
    </message>
</context>
<context>
    <name>Menus</name>
    <message>
        <source>Connect to server…</source>
        <translation>连接到服务器…</translation>
    </message>
    <message>
        <source>Local API server…</source>
        <translation>本机 API 服务器…</translation>
    </message>
</context>
<context>
    <name>ServerIndicator</name>
    <message>
        <source>API server: error</source>
        <translation>API 服务器：出错</translation>
    </message>
    <message>
        <source>API server :{port}</source>
        <translation>API 服务器 :{port}</translation>
    </message>
    <message numerus="yes">
        <source>API server :{port} · %n request(s)</source>
        <translation><numerusform>API 服务器 :{port} · %n 个请求</numerusform></translation>
    </message>
</context>
<context>
    <name>ServerPanel</name>
    <message>
        <source>Local API server</source>
        <translation>本机 API 服务器</translation>
    </message>
    <message>
        <source>Other programs (editors, scripts, Open WebUI, the openai Python package) can use the model loaded in this window through an OpenAI-compatible API (/v1/chat/completions). No second copy is loaded: API requests and this window take turns, first come, first served.</source>
        <translation>其他程序（编辑器、脚本、Open WebUI、openai Python 包）可以通过与 OpenAI 兼容的 API（/v1/chat/completions）使用本窗口已加载的模型。不会再加载第二份模型：API 请求与本窗口按先来后到轮流使用。</translation>
    </message>
    <message>
        <source>Port</source>
        <translation>端口</translation>
    </message>
    <message>
        <source>API key</source>
        <translation>API 密钥</translation>
    </message>
    <message>
        <source>optional on this computer; required for other computers</source>
        <translation>仅本机使用时可不填；允许其他计算机时必须填写</translation>
    </message>
    <message>
        <source>Generate</source>
        <translation>生成</translation>
    </message>
    <message>
        <source>Clients send it as “Authorization: Bearer KEY”. It is stored on this computer in plain text.</source>
        <translation>客户端以“Authorization: Bearer 密钥”发送。密钥以明文保存在本机。</translation>
    </message>
    <message>
        <source>Allow other computers on the network (needs an API key; plain HTTP)</source>
        <translation>允许网络中的其他计算机访问（需要 API 密钥；明文 HTTP）</translation>
    </message>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <source>Stop the server</source>
        <translation>停止服务器</translation>
    </message>
    <message>
        <source>Start the server</source>
        <translation>启动服务器</translation>
    </message>
    <message>
        <source>Last API answer: {line}</source>
        <translation>最近一次 API 回答：{line}</translation>
    </message>
    <message>
        <source>Not running: {error}</source>
        <translation>未运行：{error}</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <source>Stopping (answers in flight are cancelled)…</source>
        <translation>正在停止（进行中的回答将被取消）…</translation>
    </message>
    <message>
        <source>Off.</source>
        <translation>已关闭。</translation>
    </message>
    <message>
        <source>Listening, but no local model is loaded: requests get 503 until one is.</source>
        <translation>正在监听，但未加载本地模型：在加载模型之前，请求会收到 503。</translation>
    </message>
    <message>
        <source>Listening · idle</source>
        <translation>正在监听 · 空闲</translation>
    </message>
    <message numerus="yes">
        <source>Listening · %n API request(s) answering or waiting</source>
        <translation><numerusform>正在监听 · %n 个 API 请求正在回答或等待</numerusform></translation>
    </message>
</context>
<context>
    <name>ServingUi</name>
    <message>
        <source>Connecting was cancelled</source>
        <translation>已取消连接</translation>
    </message>
    <message>
        <source>Could not connect to the server</source>
        <translation>无法连接到服务器</translation>
    </message>
    <message>
        <source>remote: {model} at {host}</source>
        <translation>远程：{model}（{host}）</translation>
    </message>
    <message>
        <source>Compute: on the server</source>
        <translation>计算：在服务器上</translation>
    </message>
    <message>
        <source>estimated: ~chars/3</source>
        <translation>估算：约 字符数/3</translation>
    </message>
    <message>
        <source>estimated from the server's last usage</source>
        <translation>根据服务器上次返回的用量估算</translation>
    </message>
    <message>
        <source>the server does not report its context length; {n} assumed</source>
        <translation>服务器未报告上下文长度；按 {n} 计算</translation>
    </message>
    <message numerus="yes">
        <source>Waiting for %n API request(s)…</source>
        <translation><numerusform>正在等待 %n 个 API 请求…</numerusform></translation>
    </message>
</context>
</TS>
