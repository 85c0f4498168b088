"""visiongate: an OpenAI- and Groq-compatible gateway for vision-language models on Triton."""
