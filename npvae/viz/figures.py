"""Every figure of the paper from a run directory: ``make_all_figures(run_dir)`` writes PNGs
into ``RUN_DIR/figures/`` (matplotlib, Agg canvas, no display).

    01_training_curves.png          Fig. 1: recon, KL (before beta), their ratio; warm-up shaded
    02_reconstructions.png          test digits above their reconstructions
    03_latent_space.png             Fig. 2: 5,000 test means by class (PCA and t-SNE when d > 2)
    04_latent_traversal.png         Fig. 3: decoded grid over [-3, 3]^2 (the two most active
                                    dimensions when d > 2)
    05_interpolations.png           Fig. 4: 3->8, 1->7, 4->9, 0->6, 5->2 between real digits
    06_prior_samples.png            z ~ N(0, I) decoded
  CVAE only:
    07_class_conditional_samples.png  10 x 10: row per class, columns share z
    08_disentanglement.png          Fig. 5: label swap, fixed z, style transfer, traversals
    09_cvae_latent_mixing.png       section 5.3.3: each class spread over the whole prior
  Both:
    10_gradient_flow.png            gradient norms and activations per layer, start vs end of training

Each figure draws its randomness from its own stream seeded by (seed, figure number), so
the same run and seed always give the same pictures.
"""
import os
import time
from dataclasses import dataclass
from typing import Callable

from .conditional import DEFAULT_CLASS, class_samples_figure, disentanglement_figure, latent_mixing_figure
from .curves import training_curves_figure
from .gradient_flow import FILENAME as GRADIENT_FLOW_FILE
from .gradient_flow import figure_from_run as gradient_flow_figure
from .images import prior_samples_figure, reconstructions_figure, save_figure
from .latent import interpolation_figure, latent_space_figure, traversal_figure
from .run import Run


@dataclass(frozen=True)
class FigureSpec:
    number: int
    filename: str
    title: str
    kinds: tuple
    draw: Callable          # (run, rng, options) -> Figure
    caption: Callable       # (kind, options) -> one line: what to look for


def _fewer_classes(run):
    """The disentanglement figure's defaults (classes 1 and 7, three styles) for a data set with
    fewer than 8 classes: its first two classes, at most as many styles as classes."""
    classes = run.model.num_classes
    return {} if classes > 7 else {"pair": (0, 1), "styles": min(3, classes)}


def _vae_or_cvae(vae, cvae):
    return lambda kind, options: (cvae if kind == "cvae" else vae).format(**options)


FIGURES = (
    FigureSpec(1, "01_training_curves.png", "Training curves", ("vae", "cvae"),
               lambda run, rng, o: training_curves_figure(run),
               _vae_or_cvae(*2 * ("Reconstruction loss should fall steadily; the KL rises while beta grows "
                                  "in the shaded warm-up, then settles; a recon/KL ratio inside the paper's "
                                  "10-50 band means no posterior collapse (a KL near 0 sends the ratio "
                                  "off the top).",))),
    FigureSpec(2, "02_reconstructions.png", "Reconstructions", ("vae", "cvae"),
               lambda run, rng, o: reconstructions_figure(run, rng),
               _vae_or_cvae(*2 * ("Each reconstruction should keep its test {item}'s identity and pose while "
                                  "smoothing fine detail: the characteristic VAE blur.",))),
    FigureSpec(3, "03_latent_space.png", "Latent space", ("vae", "cvae"),
               lambda run, rng, o: latent_space_figure(run),
               _vae_or_cvae("Classes should form clusters although no label was used, with look-alike "
                            "classes side by side, and the cloud should fill the prior's circles.",
                            "Classes should overlap rather than cluster: the decoder is given the label, "
                            "so z only needs to hold style.")),
    FigureSpec(4, "04_latent_traversal.png", "Latent traversal", ("vae", "cvae"),
               lambda run, rng, o: traversal_figure(run, rng, o["cvae_class"] if run.conditional else None),
               _vae_or_cvae("Neighbouring cells should change smoothly; each axis should morph one {item} "
                            "into the next and vary its style (slant, width, thickness).",
                            "Every cell should be a {class_name}; the two axes should vary only its style "
                            "(slant, width, thickness).")),
    FigureSpec(5, "05_interpolations.png", "Interpolations", ("vae", "cvae"),
               lambda run, rng, o: interpolation_figure(run, rng),
               _vae_or_cvae(*2 * ("Each row should morph smoothly from the real {item} on the left to the one "
                                  "on the right, through plausible hybrids, with no jumps.",))),
    FigureSpec(6, "06_prior_samples.png", "Samples from the prior", ("vae", "cvae"),
               lambda run, rng, o: prior_samples_figure(run, rng),
               _vae_or_cvae("Draws from N(0, I) should mostly be recognisable {item}s of every class; blurry "
                            "hybrids come from the gaps between clusters.",
                            "Each draw should be a recognisable {item} of its (random) label shown in the corner.")),
    FigureSpec(7, "07_class_conditional_samples.png", "Class-conditional samples", ("cvae",),
               lambda run, rng, o: class_samples_figure(run, rng),
               _vae_or_cvae("", "Each row should hold one class throughout, and each column (one shared z) "
                                "one style: slant and thickness should match down a column.")),
    FigureSpec(8, "08_disentanglement.png", "Disentanglement", ("cvae",),
               lambda run, rng, o: disentanglement_figure(run, rng, o["cvae_class"], **_fewer_classes(run)),
               _vae_or_cvae("", "The two rows of (a) should share style step by step; a fixed z, or a real "
                                "{item}'s z, should keep its style across all ten classes; the traversals "
                                "should stay a {class_name} while the style changes.")),
    FigureSpec(9, "09_cvae_latent_mixing.png", "CVAE latent space by class", ("cvae",),
               lambda run, rng, o: latent_mixing_figure(run),
               _vae_or_cvae("", "Every class should spread over the same region as all the codes and the "
                                "prior's circles: the latent holds no class information.")),
    FigureSpec(10, GRADIENT_FLOW_FILE, "Gradient flow", ("vae", "cvae"),
               lambda run, rng, o: gradient_flow_figure(run, rng),
               _vae_or_cvae(*2 * ("One training step, at initialisation and after training: weight gradients "
                                  "should stay within a few decades of each other from decoder to encoder "
                                  "(no vanishing), and no ReLU should have a large hatched (dead) share.",))),
)


def expected_figures(kind):
    """The figure specs drawn for a model of ``kind`` ("vae" or "cvae")."""
    return [spec for spec in FIGURES if kind in spec.kinds]


def caption(spec, kind, cvae_class=DEFAULT_CLASS, class_names=None, noun="digit"):
    """The figure's one-line caption; ``noun`` names one image of the data set (data.item_noun)."""
    names = class_names or [str(k) for k in range(10)]
    name = names[cvae_class] if 0 <= cvae_class < len(names) else str(cvae_class)
    return spec.caption(kind, {"class_name": name, "cvae_class": cvae_class, "item": noun})


def make_all_figures(run_dir, seed=0, dataset_root=None, cvae_class=DEFAULT_CLASS, only=None, log=None):
    """Draw every figure for the run in ``run_dir`` into RUN_DIR/figures/; returns the paths.

    ``only``: figure numbers or file names to draw (default: all for the model's kind).
    ``log``: called with one line per figure written (e.g. ``print``); None is silent.
    Raises FileNotFoundError / ValueError (CheckpointError) naming the file at fault before
    drawing anything.
    """
    run = Run(run_dir, seed=seed, dataset_root=dataset_root)
    if run.conditional and not 0 <= int(cvae_class) < len(run.class_names):
        raise ValueError(f"class {cvae_class} is out of range 0..{len(run.class_names) - 1}")
    options = {"cvae_class": int(cvae_class)}
    specs = expected_figures(run.kind)
    if only is not None:
        wanted = {str(item) for item in only}
        specs = [s for s in specs if str(s.number) in wanted or s.filename in wanted]
    directory = run.directory
    if log:
        log(f"npvae plot: {run.kind.upper()} (latent {run.latent_dim}) from "
            f"{os.path.join(run_dir, run.model_file)}, seed {seed}")
    paths = []
    for spec in specs:
        started = time.perf_counter()
        fig = spec.draw(run, run.rng(spec.number), options)
        path = directory.figure_path(spec.filename)
        save_figure(fig, path)
        paths.append(path)
        if log:
            log(f"  [{len(paths)}/{len(specs)}] {path}  ({os.path.getsize(path) // 1024} KB, "
                f"{time.perf_counter() - started:.1f} s)")
    manifest = directory.read_manifest() if only is not None else {}
    manifest.update({"seed": run.seed, "cvae_class": options["cvae_class"], "kind": run.kind,
                     "model_file": run.model_file,
                     "figures": sorted(set(manifest.get("figures", [])) | {s.filename for s in specs})})
    directory.write_manifest(manifest)
    return paths



