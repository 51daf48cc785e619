"""Attachments: text, Markdown, code and PDF files read with caps and one-sentence refusals; in the real window
their tokens show in the budget and reach the engine inside the user message, and one too large for the budget is
refused before sending (the message stays in the input; nothing is cut)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from gui import attachments
from gui.attachments import Attachment, AttachmentError, compose, read_attachment, split
from gui.engine_thread import chat_messages
from gui_harness import set_greedy, type_and_send, wait_answer, wait_until
from pdf_fixture import write_pdf

SECRET = "The vault code is zebra-quartz-7731."


def test_reads_text_code_markdown_and_pdf(tmp_path):
    (tmp_path / "notes.md").write_text("# Title\n\nSome *notes*.\n", encoding="utf-8")
    (tmp_path / "tool.py").write_text("print('```')\n", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("中文笔记".encode("gb18030"))
    assert read_attachment(tmp_path / "notes.md") == Attachment("notes.md", "# Title\n\nSome *notes*.", "markdown")
    assert read_attachment(tmp_path / "gbk.txt").text == "中文笔记"
    code = read_attachment(tmp_path / "tool.py")
    assert "````python\n" in code.block()  # the fence is longer than any backtick run inside
    pdf = read_attachment(write_pdf(tmp_path / "doc.pdf", ["First page text", "Second page text"]))
    assert pdf.text == "[page 1]\nFirst page text\n\n[page 2]\nSecond page text"
    content = compose("Compare these", [code, pdf])
    assert split(content) == ("Compare these", [code, pdf])


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "is a binary file"),
    (lambda p: p.write_bytes(b"x" * (attachments.TEXT_CAP + 1)), "a text file can be attached up to 2.0 MB"),
    (lambda p: p.write_text("\n\n", encoding="utf-8"), "is empty"),
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: None, "cannot be read"),
])
def test_refusals_are_one_sentence_naming_the_file(tmp_path, make, message):
    path = tmp_path / "input.dat"
    make(path)
    with pytest.raises(AttachmentError, match=message) as caught:
        read_attachment(path)
    assert str(caught.value).startswith("input.dat ") and "\n" not in str(caught.value)


def test_pdf_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(attachments, "PDF_PAGE_CAP", 2)
    with pytest.raises(AttachmentError, match="has 3 pages; a PDF can be attached up to 2 pages"):
        read_attachment(write_pdf(tmp_path / "long.pdf", ["a", "b", "c"]))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really")
    with pytest.raises(AttachmentError, match="broken.pdf is not a readable PDF|broken.pdf has no text"):
        read_attachment(tmp_path / "broken.pdf")


def _requests(client, listen) -> list[dict]:
    seen = []
    listen(client._generate_requested, lambda request: seen.append(request))
    return seen


def test_attachment_tokens_show_in_the_budget_and_reach_the_engine(open_window, engine, listen, qtbot, tmp_path):
    window = open_window()
    set_greedy(window, 3)
    requests = _requests(window.client, listen)
    path = tmp_path / "facts.txt"
    path.write_text("Some facts.\n" + SECRET + "\n", encoding="utf-8")
    assert window.input.add_files([str(path)]) == 1
    assert [chip.text() for chip in window.attachment_bar.chips] == ["▤ facts.txt  ✕"]
    block = window.input.attachments[0].block()
    expected = len(engine.tokenizer.encode(block))
    wait_until(lambda: window.budget.attachments == [("facts.txt", expected)], 30, "the attachment's tokens")
    assert f"facts.txt {expected:,} tokens" in window.budget.attachment_label.text()
    type_and_send(qtbot, window, "What is the vault code?")
    wait_answer(window, 120)
    assert window.input.attachments == [] and window.attachment_bar.chips == []
    content = requests[0]["messages"][-1]["content"]
    assert content == "What is the vault code?\n\n" + block
    ids = engine.encode_chat(chat_messages(requests[0]["messages"], ""), 3).input_ids
    bare = engine.encode_chat(chat_messages([{"role": "user", "content": "What is the vault code?"}], ""), 3).input_ids
    assert abs(len(ids) - len(bare) - expected) <= 3  # the file's tokens are in the prompt, whole
    assert SECRET in engine.tokenizer.decode(ids)
    bubble = window.chat.widgets[-2].body.text()
    assert bubble == "What is the vault code?\n\n▤ facts.txt"  # the bubble shows the file's name, not its text


def test_an_attachment_too_large_is_refused_before_sending(open_window, engine, listen, qtbot, tmp_path):
    window = open_window()
    set_greedy(window, 16)
    requests = _requests(window.client, listen)
    path = tmp_path / "big.md"
    path.write_text(" ".join(f"word{i}" for i in range(1500)), encoding="utf-8")
    window.input.add_files([str(path)])
    type_and_send(qtbot, window, "Summarize")
    wait_until(lambda: window.budget.refusal_label.isVisible(), 30, "the refusal")
    wait_until(lambda: not window.controller.answering, 30, "the send to end")
    refusal = window.budget.refusal_label.text()
    tokens = len(engine.tokenizer.encode(window.input.attachments[0].block()))
    assert refusal.startswith(f"big.md ({tokens:,} tokens) does not fit") and "never cut" in refusal
    assert window.input.toPlainText() == "Summarize" and [a.name for a in window.input.attachments] == ["big.md"]
    assert requests == [] and window.controller.messages == []
    window.input.remove_attachment(0)  # without it the message fits: the refusal goes
    wait_until(lambda: not window.budget.refusal_label.isVisible(), 30, "the refusal to go")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_answer(window, 120)
    assert len(requests) == 1
