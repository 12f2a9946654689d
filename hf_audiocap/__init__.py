"""hf_audiocap: fine-tune audio captioning models on the Hugging Face stack.

audio -> AudioCapFeatureExtractor (log-mel) -> AudioCapForConditionalGeneration -> caption -> metrics

Importing the package registers its classes with transformers' Auto classes, once, here.
"""

from transformers import AutoFeatureExtractor, AutoModelForSpeechSeq2Seq, AutoProcessor

from . import _requirements  # noqa: F401  (first: stops the import in one line under a transformers out of range)
from .configuration_audiocap import AudioCapConfig, AudioCapDecoderConfig, AudioCapEncoderConfig
from .configuration_audiocap_prefix import AudioCapPrefixConfig
from .feature_extraction_audiocap import AudioCapFeatureExtractor, FeatureExtractionError
from .modeling_audiocap import AudioCapForConditionalGeneration, register_auto_classes, shift_tokens_right
from .modeling_audiocap_prefix import AudioCapPrefixForConditionalGeneration, register_prefix_auto_classes
from .processing_audiocap import AudioCapProcessor
from .tokenization import build_word_tokenizer

__version__ = "0.1.0"
PIPELINE_TASK = "audio-captioning"


def _register() -> None:
    # Local use: AutoConfig / AutoModel(ForSpeechSeq2Seq) / AutoFeatureExtractor / AutoProcessor resolve our classes.
    register_auto_classes()
    register_prefix_auto_classes()
    AutoFeatureExtractor.register(AudioCapConfig, AudioCapFeatureExtractor, exist_ok=True)
    AutoProcessor.register(AudioCapConfig, AudioCapProcessor, exist_ok=True)
    # Hub use: save_pretrained writes `auto_map` and copies the code files, so a saved folder loads with
    # trust_remote_code=True where hf_audiocap is not installed.
    AudioCapFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    AudioCapProcessor.register_for_auto_class("AutoProcessor")
    _register_pipeline_task()


class _ImportedOnUse(type):
    """The pipeline class for registries that hold classes: reading its attributes or calling it imports the real one
    (`hf_audiocap.inference.pipeline`, which then registers itself), so `import hf_audiocap` stays light there too."""

    def __getattr__(cls, name):
        from .inference.pipeline import AudioCaptioningPipeline

        return getattr(AudioCaptioningPipeline, name)

    def __call__(cls, *args, **kwargs):
        from .inference.pipeline import AudioCaptioningPipeline

        return AudioCaptioningPipeline(*args, **kwargs)


def _register_pipeline_task() -> None:
    """`pipeline("audio-captioning", model=...)` works after `import hf_audiocap`, without importing the inference
    stack here (the package depends on nothing above it): the registry holds the class's dotted name, which
    transformers imports when a pipeline is built, as for its own tasks. Releases whose registry holds classes only
    (before `transformers.pipelines._resolve_impl`) get a stand-in that imports the class when a pipeline is built."""
    import transformers.pipelines as pipelines

    if PIPELINE_TASK in pipelines.PIPELINE_REGISTRY.get_supported_tasks():
        return
    impl = "hf_audiocap.inference.pipeline.AudioCaptioningPipeline"
    pipelines.PIPELINE_REGISTRY.supported_tasks[PIPELINE_TASK] = {
        "impl": impl if hasattr(pipelines, "_resolve_impl") else _ImportedOnUse("AudioCaptioningPipeline", (), {}),
        "pt": (AutoModelForSpeechSeq2Seq,),
        "type": "multimodal",  # audio in, text out (as automatic-speech-recognition)
    }


_register()

__all__ = [
    "AudioCapConfig",
    "AudioCapDecoderConfig",
    "AudioCapEncoderConfig",
    "AudioCapFeatureExtractor",
    "AudioCapForConditionalGeneration",
    "AudioCapPrefixConfig",
    "AudioCapPrefixForConditionalGeneration",
    "AudioCapProcessor",
    "FeatureExtractionError",
    "build_word_tokenizer",
    "shift_tokens_right",
]
