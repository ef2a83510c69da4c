"""vgsink: libvgsink for Python workers. RemoteCollectorSink is a drop-in for
VoiceGateway's sink that hands each row to libvgsink (queue, retries,
crash-safe spool) instead of keeping a list that can drop rows."""

from .sink import RemoteCollectorSink

__all__ = ["RemoteCollectorSink", "__version__"]
__version__ = "0.1.0"
