"""Test fixture: train a small Baichuan2-like SentencePiece BPE tokenizer.model in-process, no downloads."""

from __future__ import annotations

import io
import random
import threading
from pathlib import Path

import sentencepiece as spm

#: Ids of Baichuan2's role markers; both must be ``<reserved_N>`` user-defined pieces.
USER_TOKEN_ID = 195
ASSISTANT_TOKEN_ID = 196
#: ``<reserved_0>`` .. ``<reserved_{N-1}>`` take ids 3 .. N+2 (after <unk>=0, <s>=1, </s>=2).
NUM_RESERVED = 200
#: unk/bos/eos + reserved pieces + the 256 byte-fallback pieces.
NUM_META_PIECES = 3 + NUM_RESERVED + 256
DEFAULT_VOCAB_SIZE = 1000

_CHINESE = [
    "你好", "世界", "我们", "今天", "天气", "很好", "中国", "北京", "上海", "人工智能", "模型", "语言",
    "学习", "问题", "回答", "谢谢", "朋友", "时间", "工作", "生活", "电脑", "手机", "数据", "计算",
    "历史", "文化", "经济", "发展", "科学", "技术", "音乐", "电影", "书", "水", "山", "河", "花", "猫",
    "狗", "吃饭", "睡觉", "喜欢", "知道", "可以", "什么", "为什么", "怎么", "因为", "所以", "但是",
]
_CHINESE_PUNCT = ["，", "。", "！", "？", "：", "、"]
_ENGLISH = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "world", "model", "language",
    "token", "chat", "assistant", "user", "question", "answer", "capital", "of", "France", "is", "Paris",
    "what", "how", "why", "please", "thank", "you", "data", "time", "and", "a", "an", "in", "on", "to",
    "with", "for", "this", "that", "it", "we", "they", "machine", "learning", "python", "code", "test",
]
_CODE = [
    "def main():", "    return 0", "for i in range(10):", "        print(i)", "if x == 1:", "import torch",
    "class Model(nn.Module):", "    def forward(self, x):", "        return self.linear(x)", "x = [1, 2, 3]",
    "int main(void) {", "if (a < b && c >= d) {", "    return 0;", "}", "while (n > 0) { n--; }",
    "    # comment", "\tindent = True",
]


def corpus_lines(count: int = 600, seed: int = 1234) -> list[str]:
    """Return ``count`` deterministic lines of mixed Chinese, English, code and digit text."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            words = [rng.choice(_CHINESE) for _ in range(rng.randint(4, 12))]
            lines.append("".join(w + (rng.choice(_CHINESE_PUNCT) if rng.random() < 0.2 else "") for w in words))
        elif kind == 1:
            words = [rng.choice(_ENGLISH) for _ in range(rng.randint(4, 14))]
            lines.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ","]))
        elif kind == 2:
            lines.append(rng.choice(_CODE))
        elif kind == 3:
            lines.append(f"{rng.randint(0, 10**rng.randint(1, 9))} + {rng.randint(0, 999)} = {rng.random():.4f}")
        else:
            lines.append(f"{rng.choice(_CHINESE)} {rng.choice(_ENGLISH)} {rng.randint(0, 2024)}年"
                         f"{rng.choice(_CHINESE)}  {rng.choice(_ENGLISH)}")
    return lines


_cache: dict[tuple, bytes] = {}
_lock = threading.Lock()


def _train(vocab_size: int, add_dummy_prefix: bool, remove_extra_whitespaces: bool,
           normalization_rule_name: str) -> bytes:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=0.995,  # the rarest characters fall back to byte pieces
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        add_dummy_prefix=add_dummy_prefix,
        remove_extra_whitespaces=remove_extra_whitespaces,
        normalization_rule_name=normalization_rule_name,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=[f"<reserved_{i}>" for i in range(NUM_RESERVED)],
        max_sentencepiece_length=16,
        num_threads=1,
        minloglevel=2,
    )
    return buffer.getvalue()


def train_tokenizer_model(path: Path, vocab_size: int = DEFAULT_VOCAB_SIZE, *, add_dummy_prefix: bool = False,
                          remove_extra_whitespaces: bool = False, normalization_rule_name: str = "identity") -> Path:
    """Write a Baichuan2-like tokenizer.model to ``path`` (a file, or an existing folder) and return its path.

    Properties as in Baichuan2: BPE, byte fallback, split digits, no BOS/EOS at encode, <unk>=0, <s>=1,
    </s>=2, user-defined ``<reserved_N>`` pieces at ids 3..202 (so 195 and 196 are reserved pieces),
    identity normalization, no dummy prefix, extra whitespace kept. Training runs once per process and
    option set (well under a second); later calls only write the cached bytes. The keyword options make
    variants for tests of other normalizer settings.
    """
    if vocab_size < NUM_META_PIECES + 100:
        raise ValueError(f"vocab_size must be at least {NUM_META_PIECES + 100} (meta and byte pieces take "
                         f"{NUM_META_PIECES})")
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.model"
    key = (vocab_size, add_dummy_prefix, remove_extra_whitespaces, normalization_rule_name)
    with _lock:
        if key not in _cache:
            _cache[key] = _train(*key)
        data = _cache[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
