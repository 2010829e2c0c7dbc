"""The ``llamacpp`` provider kind: a GGUF model run by llama.cpp (xllamacpp) in a child process BMO owns."""
