"""Token ids in, text deltas out: incremental decoding with OpenAI stop strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]


class TextStream:
    """Turns generated token ids into text deltas as they arrive.

    Decoding a window of recent tokens (not each token alone) keeps multi-byte characters
    whole: a delta that would end in U+FFFD waits for the rest of the character. Text that
    could be the start of a stop string is held back until it is known not to be one, so a
    stop string never reaches the client; once one appears, the text is cut before it and
    :attr:`stopped` turns True. Once ``divert`` appears (the start of a tool call), nothing
    more is sent: the rest stays in :attr:`unsent` for a parser.
    """

    def __init__(
        self,
        decode: Decode,
        stop: Sequence[str],
        emit: Callable[[str], None],
        divert: str | None = None,
    ) -> None:
        self._decode = decode
        self._stop = [s for s in stop if s]
        self._divert = divert
        markers = [*self._stop, *([divert] if divert else [])]
        self._holdback = max((len(s) for s in markers), default=1) - 1
        self._emit = emit
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._text = ""  # all text decoded so far
        self._sent = 0  # how much of it went out
        self.stopped = False
        self.diverted = False

    def add(self, token_id: int) -> None:
        """Take one generated token."""
        if self.stopped:
            return
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        text = self._decode(self._ids[self._prefix_offset :])
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self._text += text[len(prefix) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            self._flush(final=False)

    def finish(self) -> None:
        """Generation ended: send whatever is left."""
        if not self.stopped:
            prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
            self._text += self._decode(self._ids[self._prefix_offset :])[len(prefix) :]
            self._flush(final=True)

    @property
    def text(self) -> str:
        """Everything sent so far."""
        return self._text[: self._sent]

    @property
    def unsent(self) -> str:
        """Text decoded but not sent: everything from the divert marker on."""
        return self._text[self._sent :]

    def _flush(self, final: bool) -> None:
        if self._stop:
            start = max(0, self._sent - self._holdback)
            hits = [i for i in (self._text.find(s, start) for s in self._stop) if i >= 0]
            if hits:
                self._text = self._text[: min(hits)]
                self.stopped = True
                final = True
        if self._divert and not self.diverted:
            at = self._text.find(self._divert, max(0, self._sent - self._holdback))
            if at >= 0:
                self._send(at)
                self.diverted = True
        if not self.diverted:
            self._send(len(self._text) if final else len(self._text) - self._holdback)

    def _send(self, end: int) -> None:
        if end > self._sent:
            delta = self._text[self._sent : end]
            self._sent = end
            self._emit(delta)
