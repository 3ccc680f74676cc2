"""A physically plausible 3-axis accelerometer simulator (the embedded default data).

The simulated sensor is a phone clipped to the belt at the front of the waist,
the placement of the UCI HAR data set. Its axes, before the per-subject
placement error, are::

    x  mediolateral (to the wearer's left)
    y  longitudinal (up the trunk)
    z  anteroposterior (forward, out of the belly)

An accelerometer measures *specific force*: acceleration minus gravitational
acceleration. A sensor at rest therefore reads 1 g pointing **up**; in free
fall (the flight phase of a jump) it reads zero. The simulator works in the
world frame and rotates into the sensor frame:

1. The specific force in the world frame (left, up, forward) is gravity's
   reaction ``(0, g, 0)`` plus the body's acceleration. For periodic
   activities the vertical and forward accelerations repeat at the step
   frequency with harmonics, the sideways one at the stride frequency (half
   the step frequency, as the body sways over the left then the right foot).
   Running and jumping have flight phases: the vertical specific force is a
   train of half-sine stance pulses, zero in the air, whose mean over a cycle
   is exactly ``g`` (the body neither rises nor sinks on average).
2. The trunk's posture - pitch (forward lean negative, recline positive) and
   roll - rotates that vector into the body frame. Standing is upright,
   sitting tilts the pelvis back 18-40 degrees, lying puts the trunk
   horizontal, climbing stairs leans forward. Postural sway, breathing and
   step-synchronous trunk rocking make small changes of orientation.
3. The sensor frame is the body frame rotated by a small per-subject
   placement error; then per-axis gain error, bias and white noise.

Each subject has a style per activity (cadence, amplitudes, lean, duty
factor) drawn from population ranges, plus a global tempo and vigour; each
bout of activity jitters that style, and cadence and amplitude drift slowly
within a bout. Windows of one subject are therefore more alike than windows
of different subjects, which is why evaluation must hold out whole subjects.
"""
import numpy as np

from core.exceptions import InputError

from ._common import check_positive_int, check_rate

__all__ = ["make_synthetic", "simulate_recording", "ACTIVITIES", "GRAVITY"]

GRAVITY = 9.80665
"""Standard gravity, m/s^2."""

ACTIVITIES = ("walking", "running", "upstairs", "downstairs", "standing", "sitting", "lying", "jumping")
"""Activities the simulator knows, in the order :func:`make_synthetic` uses by default."""

_DEG = np.pi / 180.0
_BOUT_SECONDS = 20.0


def _population_style(activity, rng):
    """Draw one subject's style for one activity from population ranges."""
    u = rng.uniform
    if activity == "walking":
        return dict(f0=u(1.65, 2.05), a_v=u(2.0, 3.4), h2=u(0.15, 0.4), h3=u(0.0, 0.1),
                    ph2=u(-0.6, 0.6), ph3=u(0, 2 * np.pi), a_ap=u(1.0, 2.0), a_ml=u(0.5, 1.0),
                    pitch=u(-4, 1), roll=u(-2, 2))
    if activity == "running":
        return dict(f0=u(2.5, 3.0), duty=u(0.6, 0.78), a_ap=u(2.5, 4.5), a_ml=u(1.0, 2.0),
                    pitch=u(-12, -4), roll=u(-2, 2))
    if activity == "upstairs":
        return dict(f0=u(1.3, 1.7), a_v=u(1.5, 2.8), h2=u(0.3, 0.6), h3=u(0.0, 0.1),
                    ph2=u(1.1, 2.0), ph3=u(0, 2 * np.pi), a_ap=u(0.6, 1.2), a_ml=u(0.7, 1.3),
                    pitch=u(-17, -8), roll=u(-3, 3))
    if activity == "downstairs":
        return dict(f0=u(1.7, 2.2), a_v=u(1.3, 2.3), h2=u(0.1, 0.3), h3=u(0.0, 0.1),
                    ph2=u(-0.5, 0.5), ph3=u(0, 2 * np.pi), a_ap=u(0.8, 1.6), a_ml=u(0.6, 1.2),
                    impact=u(5.0, 9.0), impact_width=u(0.025, 0.045), impact_phase=u(0.0, 0.6),
                    pitch=u(-2, 5), roll=u(-3, 3))
    if activity == "standing":
        return dict(pitch=u(-3, 3), roll=u(-3, 3), sway=u(0.4, 1.0), fidget=u(0.05, 0.15))
    if activity == "sitting":
        return dict(pitch=u(18, 40), roll=u(-6, 6), sway=u(0.1, 0.35), fidget=u(0.02, 0.08))
    if activity == "lying":
        return dict(pitch=u(80, 95), roll=u(-45, 45), sway=u(0.05, 0.2), fidget=u(0.01, 0.05),
                    breath=u(0.2, 0.33))
    if activity == "jumping":
        return dict(f0=u(1.8, 2.4), duty=u(0.3, 0.45), a_ap=u(0.3, 0.8), a_ml=u(0.0, 0.3),
                    pitch=u(-6, 0), roll=u(-2, 2))
    raise InputError(f"unknown activity {activity!r}; the simulator knows {list(ACTIVITIES)}")


def _bout_style(style, rng):
    """Jitter a subject's style for one bout (another day, other shoes...)."""
    out = dict(style)
    for key in ("f0",):
        if key in out:
            out[key] *= rng.uniform(0.95, 1.05)
    for key in ("a_v", "a_ap", "a_ml", "impact", "sway", "fidget"):
        if key in out:
            out[key] *= rng.uniform(0.88, 1.12)
    if "duty" in out:
        out["duty"] = float(np.clip(out["duty"] + rng.uniform(-0.03, 0.03), 0.25, 0.6))
    out["pitch"] += rng.uniform(-2, 2)
    out["roll"] += rng.uniform(-2, 2)
    return out


def _slow(rng, t, fmax=0.3, k=4):
    """A smooth random signal of unit scale: a few low-frequency sinusoids (shape (T,))."""
    freqs = rng.uniform(0.02, fmax, size=k)
    phases = rng.uniform(0, 2 * np.pi, size=k)
    weights = rng.normal(size=k)
    weights /= np.sqrt(np.sum(weights ** 2) / 2.0)
    return np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phases[:, None]).T @ weights


def _pulses(frac, duty):
    """Half-sine stance pulses of unit peak: sin(pi*frac/duty) while frac < duty, else 0."""
    return np.where(frac < duty, np.sin(np.pi * np.minimum(frac / duty, 1.0)), 0.0)


def _world_force_and_posture(activity, style, t, vigour, tempo, rng):
    """Specific force in the world frame (T, 3) as (left, up, forward), and trunk pitch/roll (rad)."""
    n = len(t)
    rate = 1.0 / (t[1] - t[0]) if n > 1 else 50.0
    force = np.zeros((n, 3))
    force[:, 1] = GRAVITY
    pitch = style["pitch"] * _DEG + np.zeros(n)
    roll = style["roll"] * _DEG + np.zeros(n)
    if "f0" in style:
        f = style["f0"] * tempo * (1.0 + 0.025 * _slow(rng, t))
        psi = 2 * np.pi * np.cumsum(f) / rate + rng.uniform(0, 2 * np.pi)
        amp = vigour * (1.0 + 0.06 * _slow(rng, t))
        stride = psi / 2.0 + rng.uniform(0, 2 * np.pi)
        if activity in ("running", "jumping"):
            frac = np.mod(psi / (2 * np.pi), 1.0)
            duty = style["duty"]
            stance = _pulses(frac, duty)
            force[:, 1] = GRAVITY * np.pi / (2 * duty) * stance * (1.0 + 0.05 * _slow(rng, t))
            force[:, 2] = amp * style["a_ap"] * np.where(frac < duty, -np.sin(2 * np.pi * frac / duty), 0.0)
            force[:, 0] = amp * style["a_ml"] * np.cos(stride)
            pitch += 2.0 * _DEG * np.cos(psi + 0.5)
        else:
            vertical = (np.cos(psi) + style["h2"] * np.cos(2 * psi + style["ph2"])
                        + style["h3"] * np.cos(3 * psi + style["ph3"]))
            if activity == "downstairs":
                # Each step the body drops a stair height: the specific force sags below g
                # (a partial free fall) and then the landing gives a sharp transient. The
                # mean is removed so that gravity stays the mean over a cycle.
                frac = np.mod(psi / (2 * np.pi) - style["impact_phase"], 1.0)
                width = style["impact_width"] * style["f0"] * tempo  # as a fraction of the step
                dist = np.minimum(frac, 1.0 - frac)
                before = np.mod(frac + 3 * width, 1.0)
                sag = np.exp(-0.5 * (np.minimum(before, 1.0 - before) / (2.5 * width)) ** 2)
                spike = np.exp(-0.5 * (dist / width) ** 2) - 0.5 * sag
                spike -= spike.mean()
                vertical = vertical + style["impact"] / style["a_v"] * spike
            force[:, 1] += amp * style["a_v"] * vertical
            force[:, 2] = amp * style["a_ap"] * (np.sin(psi) + 0.3 * np.cos(2 * psi + 1.0))
            force[:, 0] = amp * style["a_ml"] * (np.cos(stride) + 0.2 * np.cos(3 * stride))
            pitch += 1.5 * _DEG * np.cos(psi + 0.3)
            roll += 1.5 * _DEG * np.cos(stride)
    else:
        # Postures: sway of the trunk, small fidgeting accelerations, breathing when lying.
        pitch += style["sway"] * _DEG * _slow(rng, t, fmax=0.5)
        roll += style["sway"] * _DEG * _slow(rng, t, fmax=0.5)
        for axis in range(3):
            force[:, axis] += style["fidget"] * _slow(rng, t, fmax=2.0, k=6)
        if "breath" in style:
            pitch += 0.6 * _DEG * np.sin(2 * np.pi * style["breath"] * t + rng.uniform(0, 2 * np.pi))
    return force, pitch, roll


def _to_body(force, pitch, roll):
    """Rotate world-frame specific force into the trunk frame (body = R^T world, R = Rz(roll) Rx(-pitch))."""
    cb, sb = np.cos(roll), np.sin(roll)
    ct, st = np.cos(pitch), np.sin(pitch)
    vx = cb * force[:, 0] + sb * force[:, 1]
    vy = -sb * force[:, 0] + cb * force[:, 1]
    vz = force[:, 2]
    return np.column_stack([vx, ct * vy - st * vz, st * vy + ct * vz])


def _rotation(yaw, pitch, roll):
    """3x3 rotation from three small angles (radians) about y, x, z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _draw_subject(rng, activities):
    """Everything that is fixed for one person and one phone."""
    angles = np.clip(rng.normal(0.0, [10.0, 4.0, 4.0]), [-20, -8, -8], [20, 8, 8]) * _DEG
    return dict(
        placement=_rotation(*angles),
        vigour=rng.uniform(0.8, 1.2),
        tempo=rng.uniform(0.92, 1.08),
        gain=1.0 + rng.normal(0.0, 0.015, size=3),
        bias=rng.normal(0.0, 0.1, size=3),
        noise=rng.uniform(0.04, 0.12),
        styles={a: _population_style(a, rng) for a in activities},
    )


def _simulate(activity, n, rate, subject, rng):
    """One bout: (n, 3) sensor readings in m/s^2."""
    t = np.arange(n) / rate
    style = _bout_style(subject["styles"][activity], rng)
    force, pitch, roll = _world_force_and_posture(activity, style, t, subject["vigour"], subject["tempo"], rng)
    body = _to_body(force, pitch, roll)
    sensor = body @ subject["placement"].T
    sensor = sensor * subject["gain"] + subject["bias"]
    return sensor + rng.normal(0.0, subject["noise"], size=sensor.shape)


def _check_activities(activities):
    if isinstance(activities, str):
        activities = (activities,)
    activities = tuple(activities)
    if not activities:
        raise InputError("activities must name at least one activity")
    unknown = [a for a in activities if a not in ACTIVITIES]
    if unknown:
        raise InputError(f"unknown activities {unknown}; the simulator knows {list(ACTIVITIES)}")
    if len(set(activities)) != len(activities):
        raise InputError(f"activities lists a name twice: {list(activities)}")
    return activities


def _check_units(units):
    if units not in ("m/s2", "g"):
        raise InputError(f"units must be 'm/s2' or 'g', got {units!r}")
    return 1.0 if units == "m/s2" else 1.0 / GRAVITY


def make_synthetic(seed=0, n_subjects=12, windows_per_activity=32, window=128, rate=50.0, *,
                   activities=ACTIVITIES, units="m/s2", dtype=np.float32):
    """Simulated waist accelerometer windows for several subjects and activities.

    See the module documentation for the physical model. Every subject
    performs every activity in bouts of about 20 s; each bout is simulated
    continuously and cut into consecutive, non-overlapping windows.

    Parameters
    ----------
    seed : int
        Same seed, same data (bit for bit).
    n_subjects : int
        Number of simulated people (ids 1..n_subjects).
    windows_per_activity : int
        Windows per subject and activity.
    window : int
        Samples per window.
    rate : float
        Sampling rate in Hz (50 Hz, as UCI HAR; 20 Hz matches WISDM).
    activities : sequence of str
        Subset of :data:`har.synthetic.ACTIVITIES` (default: all eight:
        walking, running, upstairs, downstairs, standing, sitting, lying,
        jumping).
    units : {"m/s2", "g"}
        Unit of the readings: m/s^2 (default; a resting sensor reads about
        9.81 in total) or multiples of standard gravity.
    dtype : numpy dtype

    Returns
    -------
    X : ndarray of shape (n_subjects * len(activities) * windows_per_activity, window, 3)
        Sensor readings (x, y, z), gravity included, ordered by subject, then
        activity, then time.
    y : ndarray of str, shape (N,)
        Activity of each window.
    subjects : ndarray of int64, shape (N,)
        Subject of each window (1-based).
    """
    n_subjects = check_positive_int(n_subjects, "n_subjects")
    windows_per_activity = check_positive_int(windows_per_activity, "windows_per_activity")
    window = check_positive_int(window, "window")
    rate = check_rate(rate, "rate")
    activities = _check_activities(activities)
    scale = _check_units(units)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    subjects_params = [_draw_subject(rng, ACTIVITIES) for _ in range(n_subjects)]
    per_bout = max(1, int(round(_BOUT_SECONDS * rate / window)))
    n_total = n_subjects * len(activities) * windows_per_activity
    X = np.empty((n_total, window, 3), dtype=dtype)
    y = np.empty(n_total, dtype=f"<U{max(len(a) for a in activities)}")
    subjects = np.empty(n_total, dtype=np.int64)
    i = 0
    for s, params in enumerate(subjects_params):
        for activity in activities:
            remaining = windows_per_activity
            while remaining:
                k = min(per_bout, remaining)
                bout = _simulate(activity, k * window, rate, params, rng)
                X[i:i + k] = (bout * scale).reshape(k, window, 3)
                y[i:i + k] = activity
                subjects[i:i + k] = s + 1
                i += k
                remaining -= k
    return X, y, subjects


def simulate_recording(schedule, seed=0, rate=50.0, *, units="m/s2", dtype=np.float32):
    """One continuous simulated recording following a schedule of activities.

    Useful to try :meth:`har.ActivityClassifier.predict_recording` on a long
    recording with known truth.

    Parameters
    ----------
    schedule : sequence of (activity, seconds)
        E.g. ``[("walking", 60), ("sitting", 30), ("running", 20)]``.
    seed : int
        Seeds the (single) subject and the bouts.
    rate : float
        Sampling rate in Hz.
    units : {"m/s2", "g"}
    dtype : numpy dtype

    Returns
    -------
    signal : ndarray of shape (T, 3)
    labels : ndarray of str, shape (T,)
        The activity at each sample.
    """
    rate = check_rate(rate, "rate")
    scale = _check_units(units)
    try:
        schedule = [(str(a), float(d)) for a, d in schedule]
    except (TypeError, ValueError):
        raise InputError("schedule must be a sequence of (activity, seconds) pairs") from None
    if not schedule:
        raise InputError("schedule is empty")
    _check_activities(list(dict.fromkeys(a for a, _ in schedule)))
    rng = np.random.default_rng(seed)
    subject = _draw_subject(rng, ACTIVITIES)
    pieces, labels = [], []
    for activity, seconds in schedule:
        n = int(round(seconds * rate))
        if n < 1:
            raise InputError(f"schedule entry ({activity!r}, {seconds}) lasts less than one sample at {rate} Hz")
        pieces.append(_simulate(activity, n, rate, subject, rng) * scale)
        labels.append(np.full(n, activity))
    return np.concatenate(pieces).astype(dtype), np.concatenate(labels)
