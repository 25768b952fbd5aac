"""Generated "machine sound" for the anomaly example: log-mel frames as MLPerf Tiny's anomaly detector sees them.

No download: a seeded synthesizer of a small electric machine (a motor's hum
and harmonics, a gear-mesh tone, the body's resonant broadband noise, room
noise), recorded at 16 kHz, turned into log-mel features exactly as the
MLPerf Tiny reference does (mlcommons/tiny benchmark/training/anomaly_detection:
n_fft 1024, hop 512, 128 mel bands, power 2, 10 log10, 5 consecutive frames
flattened into one 640-value vector, frame after frame).

Anomalous samples carry one fault each, at a severity drawn from a wide range so
that some are plain and some hide under the normal variation (float AUC well
below 100 %):

- bearing: a narrow tone at a frequency unrelated to the motor's speed;
- imbalance: a strong component at half the rotation frequency, odd harmonics up;
- impact: clicks (a rubbing or loose part) in some of the five frames;
- hiss: band-limited noise (a leak) between 3 and 7 kHz;
- speed: the motor runs faster or slower than it normally does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 512
N_MELS = 128
FRAMES = 5
FEATURES = N_MELS * FRAMES  # 640, the reference model's input
CLIP = N_FFT + HOP * (FRAMES - 1)  # audio samples behind one feature vector
FAULTS = ("bearing", "imbalance", "impact", "hiss", "speed")
NORMAL_SPEED_HZ = (110.0, 5.0)  # the motor's fundamental in normal operation: mean and standard deviation
GEAR_RATIO = 23  # teeth: the gear-mesh tone sits at 23 x the fundamental


@dataclass(frozen=True)
class Recording:
    """Features (samples, 640) as float16, as the .npz files store them, and 0/1 labels with each fault's name."""

    x: np.ndarray
    y: np.ndarray
    fault: tuple[str, ...]  # "" for a normal sample


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style triangular mel filters (librosa.filters.mel's default), shape (n_mels, n_fft // 2 + 1)."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        linear = hz / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log_part, linear)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        linear = mel * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel >= 15.0, log_part, linear)

    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter


def log_mel_vectors(audio: np.ndarray) -> np.ndarray:
    """(samples, CLIP) audio -> (samples, 640) log-mel vectors: five frames of 128 bands, frame after frame."""
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as librosa
    starts = np.arange(FRAMES) * HOP
    frames = np.stack([audio[:, s : s + N_FFT] for s in starts], axis=1) * window  # (samples, 5, 1024)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    mel = power @ mel_filterbank().T  # (samples, 5, 128)
    return (10.0 * np.log10(mel + np.finfo(np.float64).eps)).reshape(len(audio), FEATURES)


def _machine(rng: np.random.Generator, samples: int, speed_hz: np.ndarray) -> np.ndarray:
    """Normal operation: hum, harmonics shaped by a fixed body resonance, gear mesh, body noise, room noise."""
    t = np.arange(CLIP) / SAMPLE_RATE
    audio = np.zeros((samples, CLIP))
    timbre = np.random.default_rng(7).uniform(0.5, 1.0, 40)  # the machine's own harmonic envelope: fixed
    for k in range(1, 41):
        frequency = k * speed_hz * (1 + rng.normal(0, 0.002, samples))
        amplitude = timbre[k - 1] * k**-0.9 * rng.lognormal(0, 0.25, samples)
        audio += (amplitude * np.where(frequency < SAMPLE_RATE / 2, 1, 0))[:, None] * np.sin(
            2 * np.pi * frequency[:, None] * t + rng.uniform(0, 2 * np.pi, (samples, 1))
        )
    gear = GEAR_RATIO * speed_hz
    audio += (0.15 * rng.lognormal(0, 0.3, samples))[:, None] * np.sin(
        2 * np.pi * gear[:, None] * t + rng.uniform(0, 2 * np.pi, (samples, 1))
    )
    audio += _band_noise(rng, samples, 600, 2400, rng.lognormal(np.log(0.05), 0.3, samples))  # body resonance
    audio += rng.normal(0, 1, (samples, CLIP)) * rng.lognormal(np.log(0.004), 0.4, (samples, 1))  # room
    return audio * 0.05


def _band_noise(rng: np.random.Generator, samples: int, low: float, high: float, level: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(0, 1, (samples, CLIP)), axis=1)
    frequencies = np.fft.rfftfreq(CLIP, 1 / SAMPLE_RATE)
    spectrum[:, (frequencies < low) | (frequencies > high)] = 0
    noise = np.fft.irfft(spectrum, n=CLIP, axis=1)
    return noise / noise.std(axis=1, keepdims=True) * level[:, None]


def _fault(rng: np.random.Generator, kind: str, severity: float, speed_hz: float) -> np.ndarray:
    """One fault's extra sound (added to the normal machine's), `severity` in 0..1."""
    t = np.arange(CLIP) / SAMPLE_RATE
    one = np.zeros(CLIP)
    if kind == "bearing":
        frequency = rng.uniform(1500, 6000)
        one = 0.4 * severity * np.sin(2 * np.pi * frequency * t) * (1 + 0.5 * np.sin(2 * np.pi * speed_hz * t))
    elif kind == "imbalance":
        one = 1.2 * severity * np.sin(2 * np.pi * speed_hz / 2 * t) + sum(
            0.3 * severity / k * np.sin(2 * np.pi * k * speed_hz * t + rng.uniform(0, 6.3)) for k in (3, 5, 7, 9)
        )
    elif kind == "impact":
        for _ in range(rng.integers(1, 4)):
            at = rng.integers(0, CLIP - 200)
            decay = np.exp(-np.arange(200) / rng.uniform(10, 40))
            one[at : at + 200] += 2.0 * severity * rng.normal(0, 1, 200) * decay
    elif kind == "hiss":
        one = _band_noise(rng, 1, 3000, 7000, np.array([0.12 * severity]))[0]
    return one * 0.05


def record(
    samples: int,
    anomalous_share: float,
    *,
    seed: int,
    severity: tuple[float, float] = (0.01, 0.35),
    clip_windows: int = 1,
) -> Recording:
    """`samples` feature vectors, the given share of them anomalous (one fault each), seeded.

    clip_windows > 1 makes clips: runs of that many vectors of one machine state (speed, fault, its severity and
    frequency), as consecutive windows of one recording are; `samples` counts clips then.
    """
    rng = np.random.default_rng(seed)
    anomalous = rng.random(samples) < anomalous_share
    faults = np.where(anomalous, rng.choice(FAULTS, samples), "")
    mean, spread = NORMAL_SPEED_HZ
    speed = rng.normal(mean, spread, samples)
    off_speed = faults == "speed"
    # 1.5 to 4 standard deviations off, by severity: the mild ones are as far off as 13 % of normal samples.
    deviation = (1.5 + 2.5 * rng.uniform(*severity, samples) / severity[1]) * spread * rng.choice((-1, 1), samples)
    speed[off_speed] = mean + deviation[off_speed]
    audio = _machine(rng, samples * clip_windows, np.repeat(speed, clip_windows))
    for index in np.flatnonzero(anomalous & ~off_speed):
        for window in range(clip_windows):
            # A clip's windows share the fault's parameters: a generator of the clip's own, restarted per window.
            fault_rng = rng if clip_windows == 1 else np.random.default_rng([seed, index])
            audio[index * clip_windows + window] += _fault(
                fault_rng, str(faults[index]), float(fault_rng.uniform(*severity)), float(speed[index])
            )
    x = log_mel_vectors(audio).astype(np.float16)  # what the .npz files hold; every use reads these values
    labels = np.repeat(anomalous.astype(np.int64), clip_windows)
    return Recording(x, labels, tuple(str(f) for f in np.repeat(faults, clip_windows)))
