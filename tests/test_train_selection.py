"""Selection on validation and early stopping: a typed state whose decisions are checked by hand."""

import math

from facemac.training.selection import Selection


def test_best_epoch_patience_and_min_delta():
    s = Selection("mA", min_delta=0.01, patience=2)
    assert s.update(1, {"mA": 0.70}) and s.best_epoch == 1
    assert not s.update(2, {"mA": 0.705}) and s.bad_epochs == 1 and not s.stopped  # gain below min_delta
    assert s.update(3, {"mA": 0.72}) and (s.best_epoch, s.bad_epochs) == (3, 0)
    assert not s.update(4, {"mA": 0.71})
    assert not s.update(5, {"mA": float("nan")}) and s.stopped  # NaN never wins; second bad epoch stops
    assert s.best_metrics == {"mA": 0.72} and s.epoch == 5


def test_first_epoch_is_best_even_when_undefined_and_no_patience_never_stops():
    s = Selection("mean_auroc")
    assert s.update(1, {"mean_auroc": None}) and s.best_score == -math.inf
    for e in range(2, 30):
        s.update(e, {"mean_auroc": None})
    assert not s.stopped and s.best_epoch == 1


def test_state_round_trip_keeps_progress_but_takes_settings_from_the_config():
    a = Selection("mA", patience=3)
    a.update(1, {"mA": 0.5})
    a.update(2, {"mA": 0.4})
    state = a.state_dict()
    assert set(state) == {"epoch", "best_score", "best_epoch", "bad_epochs", "stopped", "best_metrics"}
    b = Selection("mA", patience=1)
    b.load_state_dict({**state, "patience": 99})
    assert (b.epoch, b.best_epoch, b.bad_epochs, b.patience) == (2, 1, 1, 1)
    assert not b.update(3, {"mA": 0.45}) and b.stopped
