"""The protocol core, no sockets: the request parser (``fastwsgi._parser``) and the
environ builder (``fastwsgi._environ``)."""
