"""Merge a trained audio-prefix model's LoRA adapters into its language model, into a new folder.

    python recipes/merge_lora.py outputs/clotho-llm outputs/clotho-llm-merged

The new folder holds the model (LM weights with the adapters merged, no LoRA in its config: it loads without peft)
and the processor; the source's model card is not copied, as it describes the adapters.
"""

import argparse
import sys

from hf_audiocap.training.prefix import export_merged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a saved audio-prefix model folder (model_kind: prefix) with LoRA adapters")
    p.add_argument("target", help="the folder to write")
    args = p.parse_args(argv)
    export_merged(args.source, args.target)
    print(f"Merged {args.source} into {args.target}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as err:
        print(f"merge_lora.py: error: {err}", file=sys.stderr)
        sys.exit(2)
