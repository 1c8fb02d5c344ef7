"""Train the key network of :mod:`cratedig.analysis.keynet` (issue 9) and write its weights.

Data: ``bench/keyset.py`` (chorales in drawn instruments, FluidSynth songs, numpy songs; no
realset source, nothing the tests use). The network's input is computed exactly as the
analysis computes it (decoded 11025 Hz audio -> front end -> tuning -> ``pitch_frames``).
Training (PyTorch, CPU; ``pip install torch==2.13.0``): cross-entropy over the 24 keys on
random excerpts of 15-60 s, each transposed by a random -5..+6 semitones (input moved along
the pitch axis, label with it), Adam. The validation chorales (every 5th) pick the epoch.

``--eval-real dev`` also scores the network alone on the realset's keyed dev pieces and
copies (MIREX), for model choice; the held-out split is never read here.

Usage::

    .venv/bin/python bench/keyset.py
    .venv/bin/python bench/fit_key_net.py --out src/cratedig/analysis/keynet.npz --eval-real dev
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from cratedig.analysis import keynet  # noqa: E402

KEYSET = HERE / ".cache" / "keyset"
REALSET = HERE / ".cache" / "realset"
FEATURES = KEYSET / f"features_p{keynet.PITCH_LO}_n{keynet.N_PITCH}_pool{keynet.POOL}.npz"


def features_of_signal(y: np.ndarray, sr: int) -> np.ndarray:
    from cratedig.analysis.frontend import compute_frontend
    from cratedig.analysis.tonal import estimate_tuning

    fe = compute_frontend(y, sr=sr)
    return keynet.pitch_frames(fe.tonal_mag, tuning=estimate_tuning(fe))


def _keyset_item(path: str) -> np.ndarray:
    y = np.load(KEYSET / path).astype(np.float32) / 32768.0
    return features_of_signal(y, 11025)


def _audio_file(path: str) -> np.ndarray:
    from cratedig.audio.decode import decode

    a = decode(path)
    return features_of_signal(a.samples, a.sr)


def keyset_features(workers: int = 2) -> tuple[list[dict], list[np.ndarray]]:
    items = [json.loads(s) for s in (KEYSET / "manifest.jsonl").read_text().splitlines() if s]
    items = [i for i in items if "path" in i]
    cached: dict[str, np.ndarray] = {}
    if FEATURES.exists():
        with np.load(FEATURES, allow_pickle=False) as z:
            cached = {k: z[k] for k in z.files}
    todo = [i for i in items if i["id"] not in cached]
    if todo:
        with ProcessPoolExecutor(workers) as ex:
            for i, x in zip(
                todo, ex.map(_keyset_item, [i["path"] for i in todo], chunksize=4), strict=True
            ):
                cached[i["id"]] = x
        np.savez_compressed(FEATURES, **cached)
    return items, [cached[i["id"]] for i in items]


def real_features(split: str, workers: int = 2) -> tuple[list[dict], list[np.ndarray]]:
    if split != "dev":
        raise SystemExit("only the dev split is read here")
    data = json.loads((REALSET / "truth.json").read_text())
    items = [i for i in data["songs"] + data["copies"] if i["split"] == split and i.get("key")]
    with ProcessPoolExecutor(workers) as ex:
        feats = list(ex.map(_audio_file, [str(REALSET / i["path"]) for i in items]))
    return items, feats


PCS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def mirex(ref: int, est: int) -> float:
    from cratedig.theory import Key, mirex_key_score

    return mirex_key_score(Key.from_index(ref), Key.from_index(est))


def real_key_index(item: dict) -> int:
    return PCS.index(item["key"]) + (12 if item["mode"] == "minor" else 0)


def build_torch(h1: int, h2: int):
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = torch.nn.Linear(keynet.WINDOW, h1)
            self.l2 = torch.nn.Linear(h1, h2)
            self.l3 = torch.nn.Linear(h2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, N_PITCH)
            w = x.unfold(1, keynet.WINDOW, 1)[:, :12]  # (n, 12, WINDOW)
            h = torch.relu(self.l2(torch.relu(self.l1(w))))
            out = self.l3(h.mean(dim=0))  # (12, 2)
            return torch.cat([out[:, 0], out[:, 1]])

    return Net()


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """Move ``x`` up ``k`` semitones along the pitch axis, zeros shifted in."""
    out = np.zeros_like(x)
    if k >= 0:
        out[:, k:] = x[:, : x.shape[1] - k]
    else:
        out[:, :k] = x[:, -k:]
    return out


def arrays_of(model) -> dict[str, np.ndarray]:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    return {
        "w1": sd["l1.weight"].T, "b1": sd["l1.bias"], "w2": sd["l2.weight"].T,
        "b2": sd["l2.bias"], "w3": sd["l3.weight"].T, "b3": sd["l3.bias"],
    }  # fmt: skip


def net_of(arrays: list[dict[str, np.ndarray]], version: str = "") -> keynet.KeyNet:
    """The ensemble of ``arrays`` (one dict per network) as the analysis loads it."""
    return keynet.KeyNet(
        version=version, **{k: np.stack([a[k] for a in arrays]) for k in arrays[0]}
    )


def evaluate(net: keynet.KeyNet, feats: list[np.ndarray], keys: list[int]) -> tuple[float, float]:
    est = [int(np.argmax(keynet.key_logits(x, net))) for x in feats]
    acc = float(np.mean([e == k for e, k in zip(est, keys, strict=True)]))
    return acc, float(np.mean([mirex(k, e) for e, k in zip(est, keys, strict=True)]))


def real_line(net: keynet.KeyNet, real: tuple[list[dict], list[np.ndarray]] | None) -> str:
    if not real:
        return ""
    _, rmx = evaluate(net, real[1], [real_key_index(i) for i in real[0]])
    songs = [(x, i) for i, x in zip(*real, strict=True) if not i.get("source")]
    _, smx = evaluate(net, [x for x, _ in songs], [real_key_index(i) for _, i in songs])
    return f" | real dev pieces ({len(songs)}) mirex {smx:.3f}, with copies {rmx:.3f}"


def train_one(args, seed: int, train, valid, real) -> tuple[dict[str, np.ndarray], float, int]:
    """Train one network; return the arrays of its epoch with the best validation MIREX."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_torch(args.h1, args.h2)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    fps = 11025 / 1024 / keynet.POOL
    best: tuple[float, int, dict[str, np.ndarray] | None] = (-1.0, -1, None)
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train))
        losses = []
        for b in range(0, len(order), args.batch):
            logits, labels = [], []
            for j in order[b : b + args.batch]:
                x, k, w = train[j]
                n = int(rng.uniform(15, 60) * fps)
                s = int(rng.integers(0, max(1, len(x) - n)))
                d = int(rng.integers(-5, 7))
                xc = shift(x[s : s + n], d) * np.float32(rng.uniform(0.7, 1.3))
                logits.append(model(torch.from_numpy(xc)))
                labels.append((k % 12 + d) % 12 + (k // 12) * 12)
            weights = torch.tensor([train[j][2] for j in order[b : b + args.batch]])
            loss = torch.nn.functional.cross_entropy(
                torch.stack(logits), torch.tensor(labels), reduction="none"
            )
            loss = (loss * weights).sum() / weights.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        arrays = arrays_of(model)
        net = net_of([arrays])
        acc, mx = evaluate(net, [x for x, _ in valid], [k for _, k in valid])
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(f"seed {seed} epoch {epoch:2d} loss {np.mean(losses):.3f} valid acc {acc:.3f} "
                  f"mirex {mx:.3f}{real_line(net, real)}", flush=True)  # fmt: skip
        if mx >= best[0] and epoch >= args.epochs // 2:
            best = (mx, epoch, arrays)
    assert best[2] is not None
    return best[2], best[0], best[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "keynet.npz")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--h1", type=int, default=64)
    ap.add_argument("--h2", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seeds", default="0", help="comma-separated; one network per seed, averaged")
    ap.add_argument("--sources", default="chorale,fluidsynth,numpy,modal")
    ap.add_argument("--song-weight", type=float, default=1.0,
                    help="loss weight of a synthesized song against a chorale's 1")  # fmt: skip
    ap.add_argument("--eval-real", choices=["dev"], default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    items, feats = keyset_features()
    srcs = set(args.sources.split(","))
    train = [
        (x, i["key"], 1.0 if i["source"] == "chorale" else args.song_weight)
        for i, x in zip(items, feats, strict=True)
        if i["split"] == "train" and i["source"] in srcs and len(x) >= 8
    ]
    valid = [(x, i["key"]) for i, x in zip(items, feats, strict=True) if i["split"] == "valid"]
    print(
        f"features {time.perf_counter() - t0:.0f} s; train {len(train)} valid {len(valid)}",
        flush=True,
    )
    real = real_features(args.eval_real) if args.eval_real else None
    nets, notes = [], []
    t1 = time.perf_counter()
    for seed in (int(s) for s in args.seeds.split(",")):
        arrays, mx, epoch = train_one(args, seed, train, valid, real)
        nets.append(arrays)
        notes.append(f"seed {seed} epoch {epoch} ({mx:.3f})")
    version = (
        f"keynet-1: {len(nets)} x ({keynet.WINDOW}-{args.h1}-{args.h2}-2), "
        f"{len(train)} training pieces ({args.sources}); " + ", ".join(notes)
    )
    net = net_of(nets, version)
    np.savez(args.out, version=np.array(version), **{k: getattr(net, k) for k in keynet._NAMES})
    acc, mx = evaluate(
        keynet.KeyNet.from_npz(args.out), [x for x, _ in valid], [k for _, k in valid]
    )
    print(f"{version}\ntrained in {time.perf_counter() - t1:.0f} s; ensemble valid acc {acc:.3f} "
          f"mirex {mx:.3f}{real_line(net, real)} -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
