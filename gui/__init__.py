"""PySide6 desktop chat window for Baichuan2, driving inference/ through a worker thread."""
