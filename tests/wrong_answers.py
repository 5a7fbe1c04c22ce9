"""Plausible wrong answers to every exercise, for the test that each check fails them (tests/test_student.py).

Each is typed into the exercise's answer cell of the student edition in place of the solution, as a student
would. An experiment exercise is judged in quick mode there, where no network can learn and ``learned()`` is
not judged; its wrong *outcomes* (a variant that did not learn) are therefore typed in as the verdict a full
short-budget run returns (``quick=False``), with the runs' validation accuracies.
"""

from __future__ import annotations


def verdict(name: str, notebook: str, settings: str, accuracies: tuple, params: str) -> str:
    """An answer cell that sets ``name`` to the verdict of a full short-budget judgement with these outcomes."""
    return (f"from utils import exercises\nfrom utils.models import build_model\n"
            f"from utils.summary import count_parameters\n\n"
            f"{name} = exercises.Verdict(label='typed in', notebook={notebook!r}, settings={settings},\n"
            f"    variant_runs=[{{'val_accuracy': a, 'params': {params}}} for a in {accuracies!r}],\n"
            f"    baseline_runs=[], baseline_source='', accuracy=None, gap=None, quick=False)")


NO_POOL = """from utils import exercises
from utils.models import MnistNet


class NoPoolNet(MnistNet):
    def __init__(self):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3), nn.ReLU(),
            nn.Conv2d(10, 12, 3), nn.ReLU(),
            nn.Conv2d(12, 16, 3), nn.ReLU(),
            nn.Conv2d(16, 16, 3), nn.ReLU(),
            nn.Conv2d(16, 16, 3), nn.ReLU(),{extra}
        )
        head = nn.Sequential(nn.Flatten(), nn.Linear({flat}, 10))
        super().__init__(features, head)
"""

RELU_FIRST = """from utils import exercises
from utils.models import MnistNet


class ReluFirstNet(MnistNet):
    def __init__(self):
        features = nn.Sequential(
{layers}
        )
        head = nn.Sequential(nn.Flatten(), nn.Linear(400, 10))
        super().__init__(features, head)


relu_first = exercises.judge("02_batchnorm", ReluFirstNet, label="ReLU before BatchNorm")
"""


def relu_first(relu_then_norm: bool, bias: bool) -> str:
    """Step 2's five blocks as an answer cell, each ReLU before or after its BatchNorm, with or without biases."""
    lines = []
    for c_in, c_out in [(1, 10), (10, 12), (12, 16), (16, 16), (16, 16)]:
        pool = " nn.MaxPool2d(2)," if c_in == 1 else ""
        pair = ["nn.ReLU()", f"nn.BatchNorm2d({c_out})"]
        lines.append(f"            nn.Conv2d({c_in}, {c_out}, 3, bias={bias}),{pool} "
                     f"{', '.join(pair if relu_then_norm else pair[::-1])},")
    return RELU_FIRST.format(layers="\n".join(lines))


NARROW = """from utils import exercises
from utils.models import DROPOUT, MnistNet


class NarrowGapNet(MnistNet):
    def __init__(self, dropout: float = DROPOUT):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(10), nn.ReLU(),
            nn.Conv2d(10, 12, 3, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
            nn.Conv2d(12, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(16, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, {last}, 3, bias={bias}), nn.BatchNorm2d({last}), nn.ReLU(), nn.Dropout(dropout),
        )
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d({last}, 10, 1), nn.Flatten())
        super().__init__(features, head)


narrow_gap = exercises.judge("04_gap", NarrowGapNet, label="last layer 10 channels")
"""

PREDICT = "def predict(model, images):\n    {body}"
RATE = 'from utils import exercises\n\nrate = {rate}\nhigher_rate = exercises.judge("03_dropout", label="x", {knob})'

WRONG = {
    # ---- 01_baseline
    "q1_parameters": [
        "answer_parameters = 100 + 24 * (10 * 9) + 16 * (24 * 9 + 1) + 2_320 + 2_320 + 4_010",  # 24 biases forgotten
        "answer_parameters = 100 + 24 * (10 * 9 + 1) + 16 * (24 * 9 + 1) + 2_320 + 2_320 + 4_010 + 1",  # off by one
        "answer_parameters = count_parameters(build_model('baseline'))",  # the network before widening
        "answer_parameters = 100 + 24 * (10 * 9 + 1) + 16 * (24 * 9 + 1) + 2_320 + 2_320",  # the head forgotten
    ],
    "q2_receptive_field": [
        "answer_pool_field, answer_receptive_field = 4, 20",  # the network before the pool moved
        "answer_pool_field, answer_receptive_field = 6, 1 + 2 + 2 + 1 + 2 * 3",  # the pool's jump forgotten
        "answer_pool_field, answer_receptive_field = 5, 17",  # the pool adds nothing
        "answer_pool_field, answer_receptive_field = 6, 20",  # only the pool's field worked out
    ],
    "q3_no_pool": [
        NO_POOL.format(extra=" nn.MaxPool2d(2),", flat="16 * 9 * 9"),  # the pool kept, at the end
        NO_POOL.format(extra="", flat="400"),  # the head left for the pooled 5x5 map: cannot run
        NO_POOL.format(extra=" nn.Conv2d(16, 16, 3), nn.ReLU(),", flat="16 * 16 * 16"),  # a layer added
    ],
    "q4_learning_rate": [
        'lower_lr = exercises.judge("01_baseline", label="the recipe\'s LR", lr=0.1)',  # not lower
        'lower_lr = exercises.judge("01_baseline", label="no LR given")',  # nothing changed
        # measured: OMP_NUM_THREADS=1, exercises.judge("01_baseline", lr=0.01) on validation, seeds 1-3
        verdict("lower_lr", "01_baseline", "{'lr': 0.01}", (80.87, 31.22, 33.57), "11_586"),
        verdict("lower_lr", "01_baseline", "{'lr': 1e-6}", (10.64, 10.64, 10.64), "11_586"),  # learns nothing
        'lower_lr = exercises.judge("01_baseline", label="x", lr=0.09, warmup=0.8)',  # the warm-up does the work
        'lower_lr = exercises.judge("02_batchnorm", label="x", lr=0.03)',  # BatchNorm's network, not step 1's
    ],
    # ---- 02_batchnorm
    "q1_batchnorm_parameters": [
        "answer_batchnorm_parameters, answer_biases_dropped = 14 + 16 + 20 + 20 + 20, 90",  # one number per channel
        "answer_batchnorm_parameters, answer_biases_dropped = 180, 5",  # one bias per layer
        "answer_batchnorm_parameters, answer_biases_dropped = 2 * (10 + 12 + 16 + 16 + 16), 70",  # step 2's widths
        "answer_batchnorm_parameters, answer_biases_dropped = 180, 89",  # off by one bias
    ],
    "q2_relu_before_batchnorm": [
        relu_first(relu_then_norm=False, bias=False),  # step 2's own order
        relu_first(relu_then_norm=True, bias=True),  # the biases BatchNorm makes useless kept
        # the right network, but a verdict in which it did not learn on every seed
        verdict("relu_first", "02_batchnorm", "{}", (97.1, 45.0, 96.8), "count_parameters(build_model('batchnorm'))"),
    ],
    "q3_scoring_mode": [
        PREDICT.format(body="model.eval()\n    return model(images).argmax(1)"),  # keeps gradients
        PREDICT.format(body="with torch.no_grad():\n        return model(images).argmax(1)"),  # training mode
        PREDICT.format(body="model.eval()\n    with torch.no_grad():\n        return model(images)"),  # scores
        PREDICT.format(body="model.eval()\n    with torch.no_grad():\n        return model(images).argmax(0)"),
    ],
    # ---- 03_dropout
    "q1_dropout_arithmetic": [
        "answer_zeroed, answer_kept_value = 400 * 0.8, 3.0 / 0.8",  # the kept count
        "answer_zeroed, answer_kept_value = 400 * 0.2, 3.0",  # not scaled
        "answer_zeroed, answer_kept_value = 400 * 0.2, 3.0 * 0.8",  # scaled the wrong way
    ],
    "q2_dropout_rate": [
        RATE.format(rate="0.5", knob="dropout=rate"),  # another rate than the one asked
        RATE.format(rate="0.9", knob="dropout=rate"),
        RATE.format(rate="0.2", knob="lr=rate"),  # the rate given to another setting
        verdict("higher_rate", "03_dropout", "{'dropout': 0.2}", (98.2, 98.4, 60.0), "11_656"),  # one seed failed
    ],
    "q3_dropout_values": [
        "answer_values = [16 * 9 * 9]",  # one of the two layers
        "answer_values = [16 * 5 * 5, 16 * 9 * 9]",  # the order reversed
        "answer_values = [16, 16]",  # channels, not values
        "answer_values = [16 * 11 * 11, 16 * 5 * 5]",  # the map before the convolution
    ],
    # ---- 04_gap
    "q1_head_parameters": [
        "answer_dense_head, answer_gap_head = 24 * 5 * 5 * 10, 24 * 10",  # biases forgotten
        "answer_dense_head, answer_gap_head = 24 * 5 * 5 * 10 + 10, 24 * 5 * 5 + 10",  # GAP keeps the 5x5
        "answer_dense_head, answer_gap_head = 16 * 5 * 5 * 10 + 10, 16 * 10 + 10",  # step 4's 16 channels
    ],
    "q2_linear_head": [
        "linear_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))",  # not copied
        "linear_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))\n"
        "with torch.no_grad():\n    linear_head[2].weight.copy_(trained.head[1].weight.flatten(1))",  # bias not copied
        "linear_head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 10))",  # a dense head, no averaging
    ],
    "q3_narrower_last_layer": [
        NARROW.format(last=16, bias=False),  # step 4's own network
        NARROW.format(last=10, bias=True),  # a bias before BatchNorm
        NARROW.format(last=12, bias=False),  # another width
        NARROW.format(last=10, bias=False).replace(  # the right network, a verdict where one seed did not learn
            'narrow_gap = exercises.judge("04_gap", NarrowGapNet, label="last layer 10 channels")',
            verdict("narrow_gap", "04_gap", "{}", (98.0, 88.5, 97.9), "count_parameters(NarrowGapNet())")),
        NARROW.format(last=10, bias=False).replace('judge("04_gap"', 'judge("03_dropout"'),  # against step 3
        NARROW.format(last=10, bias=False).replace(", nn.Dropout(dropout),", ","),  # the Dropout layers left out
    ],
    # ---- 05_augmentation
    "q1_shift_range": [
        "answer_shifts, answer_largest_move = set(range(-4, 4)), 32 ** 0.5",  # 4 left out
        "answer_shifts, answer_largest_move = set(range(-4, 5)), 4",  # along one axis only
        "answer_shifts, answer_largest_move = set(range(-3, 4)), 18 ** 0.5",  # 4.2 rounded down to 3
        "answer_shifts, answer_largest_move = {-4.2, 0, 4.2}, 4.2 * 2 ** 0.5",  # not whole pixels
    ],
    "q2_stronger_rotation": [
        'from utils import exercises\n\nstronger = exercises.judge("05_augmentation", label="x", degrees=5.01)',
        'from utils import exercises\n\nstronger = exercises.judge("05_augmentation", label="x", degrees=30)',
        'from utils import exercises\n\nstronger = exercises.judge("05_augmentation", label="x", degrees=15, '
        'translate=0.2)',  # two changes at once
        verdict("stronger", "05_augmentation", "{'degrees': 15}", (98.9, 11.35, 98.7), "7_816"),  # a seed failed
        'from utils import exercises\n\nstronger = exercises.judge("04_gap", label="x", degrees=15)',  # no augmentation
    ],
}
