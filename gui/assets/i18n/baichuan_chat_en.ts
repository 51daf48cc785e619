<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en">
<context>
    <name>BudgetBar</name>
    <message numerus="yes">
        <location filename="../../gui/budget_bar.py" line="87" />
        <source>%n old round(s) will be dropped</source>
        <translation><numerusform>%n old round will be dropped</numerusform><numerusform>%n old rounds will be dropped</numerusform></translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message numerus="yes">
        <location filename="../../gui/app.py" line="79" />
        <source>%n interrupted answer(s) recovered from the last session</source>
        <translation><numerusform>%n interrupted answer recovered from the last session</numerusform><numerusform>%n interrupted answers recovered from the last session</numerusform></translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/main_window.py" line="257" />
        <source>Exported %n conversation(s) to {path}</source>
        <translation><numerusform>Exported %n conversation to {path}</numerusform><numerusform>Exported %n conversations to {path}</numerusform></translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/main_window.py" line="264" />
        <source>Imported %n conversation(s)</source>
        <translation><numerusform>Imported %n conversation</numerusform><numerusform>Imported %n conversations</numerusform></translation>
    </message>
</context>
<context>
    <name>ConversationList</name>
    <message numerus="yes">
        <location filename="../../gui/conversation_list.py"/>
        <source>Delete %n conversation(s) and all their messages?</source>
        <translation><numerusform>Delete %n conversation and all its messages?</numerusform><numerusform>Delete %n conversations and all their messages?</numerusform></translation>
    </message>
    <message numerus="yes">
        <location filename="../../gui/conversation_list.py"/>
        <source>Delete %n conversation(s)…</source>
        <translation><numerusform>Delete %n conversation…</numerusform><numerusform>Delete %n conversations…</numerusform></translation>
    </message>
</context>
<context>
    <name>ConnectDialog</name>
    <message numerus="yes">
        <source>The server serves %n model(s).</source>
        <translation><numerusform>The server serves %n model.</numerusform><numerusform>The server serves %n models.</numerusform></translation>
    </message>
</context>
<context>
    <name>ServerIndicator</name>
    <message numerus="yes">
        <source>API server :{port} · %n request(s)</source>
        <translation><numerusform>API server :{port} · %n request</numerusform><numerusform>API server :{port} · %n requests</numerusform></translation>
    </message>
</context>
<context>
    <name>ServerPanel</name>
    <message numerus="yes">
        <source>Listening · %n API request(s) answering or waiting</source>
        <translation><numerusform>Listening · %n API request answering or waiting</numerusform><numerusform>Listening · %n API requests answering or waiting</numerusform></translation>
    </message>
</context>
<context>
    <name>ServingUi</name>
    <message numerus="yes">
        <source>Waiting for %n API request(s)…</source>
        <translation><numerusform>Waiting for %n API request…</numerusform><numerusform>Waiting for %n API requests…</numerusform></translation>
    </message>
</context>
</TS>