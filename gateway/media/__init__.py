"""Media intake: a request's image and video references become validated bytes."""

from gateway.media.intake import Media, MediaError, MediaRef, intake

__all__ = ["Media", "MediaError", "MediaRef", "intake"]
