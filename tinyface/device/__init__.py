"""Transports to a board: pseudo-terminals, the emulated board, the native host build."""
