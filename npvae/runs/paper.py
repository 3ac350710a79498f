"""The paper's setting (Table 3) and its results (Table 4: final training metrics), in one place."""

PAPER_SETTING = {"dataset": "mnist", "latent_dim": 2, "batch_size": 128, "lr": 1e-3,
                 "epochs": 30, "warmup_epochs": 10, "beta": 1.0}
# model -> (reconstruction, KL, total), per image in nats, training set, final epoch
PAPER_TABLE4 = {"vae": (138.00, 6.59, 144.59), "cvae": (124.36, 4.80, 129.16)}
PAPER_IMPROVEMENT = ("9.9%", "27.2%", "10.7%")


def is_paper_setting(config):
    """True when a run's configuration (a dict) is the paper's Table 3, on the full training set."""
    for key, value in PAPER_SETTING.items():
        got = config.get(key)
        if isinstance(value, float):
            if not isinstance(got, (int, float)) or abs(got - value) > 1e-12 * max(1.0, abs(value)):
                return False
        elif got != value:
            return False
    return (config.get("limit") is None and config.get("schedule", "epoch") == "epoch"
            and config.get("likelihood", "bernoulli") == "bernoulli")


def paper_table4_text(kind):
    """'138.00 / 6.59 / 144.59' for a model kind."""
    return " / ".join(f"{v:.2f}" for v in PAPER_TABLE4[kind])
