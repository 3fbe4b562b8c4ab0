"""The tinyface serial protocol: spec (the one definition), frame codec, C header, host client."""
