"""Loading and modelling: config, checkpoint reading, the plain CausalLM, the demo GGUF."""
