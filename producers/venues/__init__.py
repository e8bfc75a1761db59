"""One module per venue family: frame parsers (``ADAPTER``) and live protocol (``PROTOCOL``)."""
