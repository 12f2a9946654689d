"""hf_audiocap: fine-tune audio captioning models on the Hugging Face stack.

audio -> AudioCapFeatureExtractor (log-mel) -> AudioCapForConditionalGeneration -> caption -> metrics
"""

__version__ = "0.1.0"
