"""The InvokeModel response body that llmfy puts in place of one it read.

`llmfy_bedrock.instrument` imports this module only when it reads a body,
so that importing the plugin does not import botocore.
"""

from __future__ import annotations

from botocore.response import StreamingBody


class ReadBody(StreamingBody):  # type: ignore[misc]  # botocore has no type hints
    """A botocore `StreamingBody` over bytes already read from the connection."""

    def set_socket_timeout(self, timeout: float) -> None:
        """Do nothing: no read of this body waits on the socket.

        botocore's own method reaches into the HTTP response for its socket,
        which this body does not have, and raises AttributeError.
        """
