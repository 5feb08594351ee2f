"""The report's pictures: a side-by-side figure per case and a bar chart of the scores, as small PNGs."""

from __future__ import annotations

from pathlib import Path

from .stages import image_set

__all__ = ["side_by_side", "score_chart", "palette"]

COLUMNS = (("art", "original"), ("protect", "cloaked copy"), ("generate-clean", "mimic trained on originals"),
           ("generate-cloaked", "mimic trained on cloaked"))


def side_by_side(folders: dict, out: Path, rows: int = 4) -> None:
    """Originals | cloaked copies | clean-LoRA | cloaked-LoRA images; generated columns share prompt and seed.

    ``folders`` maps each stage (``art``, ``protect``, ``generate-clean``, ``generate-cloaked``) to its folder;
    a column whose stage is missing (the protected side of a clean-only run) is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [(name, title) for name, title in COLUMNS if name in folders]  # a clean-only run has two
    sets = [image_set(folders[name])[0] for name, _ in columns]
    rows = min(rows, *(len(s) for s in sets))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.9 * len(columns), 1.9 * rows + 0.3), squeeze=False)
    for c, ((_, title), images) in enumerate(zip(columns, sets)):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(images[r].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    palette(out)


def palette(path: Path) -> None:
    """Rewrite a PNG with a 256-colour palette: a third of the size, for committed reports."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def score_chart(cases: list[dict], out: Path) -> None:
    """Grouped bars per case: the share judged the artist's style for base, clean-LoRA and cloaked-LoRA images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [c for c in cases if "mimicry_success" in c["scores"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(judged) + 1.5), 3.0))
    width = 0.27
    for k, (key, label) in enumerate((("base", "base model"), ("clean", "LoRA on originals"),
                                      ("cloaked", "LoRA on cloaked"))[:len(judged[0]["scores"]["mimicry_success"])]):
        values = [100 * c["scores"]["mimicry_success"][key] for c in judged]
        ax.bar([i + (k - 1) * width for i in range(len(judged))], values, width, label=label)
    ax.set_xticks(range(len(judged)), [c["case"] for c in judged], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("judged the artist's style (%)", fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
