"""Media intake: images and videos in a chat become bytes and indexed contract parts."""

from gateway.media.intake import Intake, MediaError, intake

__all__ = ["Intake", "MediaError", "intake"]
