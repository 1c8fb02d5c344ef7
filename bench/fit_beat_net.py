"""Train the beat network of :mod:`cratedig.analysis.beatnet` (issue 9) and write its weights.

Data: ``bench/beatset.py`` (development halves only). A fifth of the pieces (by a hash of
the piece) are held back for validation: the epoch is chosen by how often the activation's fold
at the true beat period peaks on the true beat (within an eighth of a beat), on those pieces,
beside the same figure for the onset envelope the analysis folds today.

Training (PyTorch, CPU; ``pip install -e '.[train]'``): random 15 s windows, each time-scaled
by a drawn factor 0.8-1.25 (the log-mel frames resampled, the beats with them: tempo is not
what the network should learn), binary cross-entropy on beat and downbeat targets widened to
the neighbouring frames (0.5), Adam.

The shipped ensemble (three members, seeds 0-2, every piece, 20 epochs of 300 steps; about
3 minutes a member on 2 cores)::

    .venv/bin/python bench/beatset.py
    .venv/bin/python bench/fit_beat_net.py --all --out src/cratedig/analysis/beatnet.npz

``--folds 4 --fold K`` (without ``--all``) trains without the pieces of fold K, to score the
development sets with networks that never saw them.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from cratedig.analysis import beatnet  # noqa: E402

DATA = HERE / ".cache" / "beatset" / "beatset.npz"
#: The scores part of ``beatset.py`` (``--part corpus``), read beside DATA where it exists.
DATA_CORPUS = HERE / ".cache" / "beatset" / "corpus.npz"
#: The modules part of ``beatset.py`` (``--part modules``: moduleset's dev half), read beside
#: DATA where it exists; its excerpts join the real-music pool.
DATA_MODULES = HERE / ".cache" / "beatset" / "modules.npz"
#: ``--pack``: log-mel in dB stored as uint8 steps of MEL_STEP dB from MEL_FLOOR (the analysis'
#: floor), a third of the float16 file: small enough to carry to a training machine.
MEL_FLOOR, MEL_STEP = -100.0, 0.5
FPS = 11025 / 256
NET_FPS = FPS / beatnet.POOL
WINDOW = 646  # 15 s of rhythm frames
NET_WINDOW = -(-WINDOW // beatnet.POOL)


def load(paths: list[Path] | None = None) -> list[dict]:
    """Every excerpt of ``paths`` (default: DATA, and DATA_CORPUS and DATA_MODULES where they
    exist); the scores part's groups start with ``corpus:``, the modules part's with
    ``modules:``."""
    if paths is None:
        paths = [DATA] + [p for p in (DATA_CORPUS, DATA_MODULES) if p.exists()]
    return [it for p in paths for it in _load_one(p)]


def _load_one(path: Path) -> list[dict]:
    if path.suffix == ".xz":  # a --pack file
        import io
        import lzma

        z = np.load(io.BytesIO(lzma.decompress(path.read_bytes())), allow_pickle=False)
    else:
        z = np.load(path, allow_pickle=False)
    lens = z["lengths"]
    if "mel_u8" in z.files:  # a --pack file
        mel = (z["mel_u8"].astype(np.float32) * MEL_STEP + MEL_FLOOR).astype(np.float16)
    else:
        mel = z["mel"]
    beats, nb = z["beats"], z["n_beats"]
    downs, nd = z["downbeats"], z["n_downbeats"]
    out = []
    a = b = d = 0
    for i, n in enumerate(lens):
        out.append(
            {
                "id": str(z["ids"][i]),
                "group": str(z["groups"][i]),
                "x": beatnet.inputs(mel[:, a : a + n].astype(np.float32), beatnet.POOL),
                "mel": mel[:, a : a + n].astype(np.float32),
                "beats": beats[b : b + nb[i]],
                "downbeats": downs[d : d + nd[i]],
            }
        )
        a, b, d = a + n, b + nb[i], d + nd[i]
    return out


def fold_of(group: str, folds: int) -> int:
    """The cross-validation fold of a piece (a hash of its group name)."""
    return zlib.crc32(group.encode()) % folds


def targets(times: np.ndarray, n: int) -> np.ndarray:
    """Per network frame: 1 on a beat's frame, 0.5 beside it."""
    t = np.zeros(n, np.float32)
    f = np.floor(times * NET_FPS).astype(int)
    for off, v in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        g = f + off
        g = g[(g >= 0) & (g < n)]
        t[g] = np.maximum(t[g], v)
    return t


def sample(
    pools: list[list[dict]], shares: list[float], rng: np.random.Generator, batch: int
) -> tuple:
    xs, ys = [], []
    for _ in range(batch):
        pool = pools[int(rng.choice(len(pools), p=shares))]
        it = pool[rng.integers(len(pool))]
        s = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        n = it["x"].shape[1]
        span = WINDOW * s
        if n - 1 <= span:
            start = 0.0
        else:
            start = float(rng.uniform(0, n - 1 - span))
        pos = start + np.arange(WINDOW) * s
        pos = np.minimum(pos, n - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        fr = (pos - lo).astype(np.float32)
        mel = it["mel"][:, lo] * (1 - fr) + it["mel"][:, hi] * fr
        x = beatnet.inputs(mel, beatnet.POOL)
        t0 = start / FPS
        bt = (it["beats"] - t0) / s
        dt = (it["downbeats"] - t0) / s
        xs.append(x)
        ys.append(np.stack([targets(bt, NET_WINDOW), targets(dt, NET_WINDOW)]))
    return np.stack(xs), np.stack(ys)


def build(channels: int, dropout: float):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Conv1d(beatnet.N_IN, channels, 3, padding=1)
            self.a = nn.ModuleList(
                nn.Conv1d(channels, channels, beatnet.KERNEL, dilation=d, padding=2 * d)
                for d in beatnet.DILATIONS
            )
            self.b = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in beatnet.DILATIONS)
            self.out = nn.Conv1d(channels, 2, 1)
            self.drop = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.elu(self.inp(x))
            for a, b in zip(self.a, self.b, strict=True):
                h = h + b(self.drop(nn.functional.elu(a(h))))
            return self.out(h)

    return Net()


def export(nets: list, path: Path, version: str) -> None:
    """The members' weights stacked on a leading ensemble axis (the layout of
    :class:`cratedig.analysis.beatnet.BeatNet`), plain arrays only."""
    members = []
    for net in nets:
        arrays = {
            "w_in": net.inp.weight,
            "b_in": net.inp.bias,
            "w_out": net.out.weight,
            "b_out": net.out.bias,
        }
        for i, (a, b) in enumerate(zip(net.a, net.b, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = a.weight, a.bias
            arrays[f"w{i}b"], arrays[f"b{i}b"] = b.weight, b.bias
        members.append({k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()})
    np.savez_compressed(
        path,
        version=np.array(version),
        pool=np.array(beatnet.POOL),
        **{k: np.stack([m[k] for m in members]) for k in members[0]},
    )


def fold_phase(env: np.ndarray, period: float, bins: int = 32) -> float:
    idx = np.arange(len(env), dtype=np.float64)
    ph = ((idx % period) / period * bins).astype(int) % bins
    h = np.bincount(ph, weights=env, minlength=bins) / np.maximum(
        np.bincount(ph, minlength=bins), 1
    )
    h = (h + np.roll(h, 1) + np.roll(h, -1)) / 3
    return (int(np.argmax(h)) + 0.5) / bins


def onset_env(mel_db: np.ndarray) -> np.ndarray:
    mel = 10 ** (mel_db / 10.0)
    lm = np.log1p(100 * mel / max(float(mel.max()), 1e-10))
    return np.maximum(0, np.diff(lm, axis=1, prepend=lm[:, :1])).sum(axis=0)


def phase_hits(items: list[dict], acts: list[np.ndarray]) -> tuple[float, float]:
    """Share of items whose fold peaks within 1/8 beat of the true beat phase: network, onsets."""
    net, ons = [], []
    for it, a in zip(items, acts, strict=True):
        b = it["beats"]
        period = float(np.median(np.diff(b))) * FPS
        truth = (float(np.median((b * FPS) % period)) / period) % 1.0
        act = np.repeat(a[0], beatnet.POOL)[: it["mel"].shape[1]]
        for env, out in ((act, net), (onset_env(it["mel"]), ons)):
            p = fold_phase(env, period)
            d = abs((p - truth + 0.5) % 1.0 - 0.5)
            out.append(d < 0.125)
    return float(np.mean(net)), float(np.mean(ons))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="one ensemble member per seed"
    )
    ap.add_argument("--all", action="store_true", help="train on every piece (no validation)")
    ap.add_argument(
        "--last-epoch",
        action="store_true",
        help="keep the last epoch, as --all does (the held-back fold then only reports, so it "
        "can score the fold's pieces with a network chosen without them)",
    )
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fold", type=int, default=0, help="the fold held back for validation")
    ap.add_argument(
        "--groove-share", type=float, default=0.4, help="share of windows from the grooves"
    )
    ap.add_argument(
        "--corpus-share",
        type=float,
        default=0.2,
        help="share of windows from the scores part (taken from the other real music's share)",
    )
    ap.add_argument("--data", type=Path, nargs="+", default=None, help="beatset files to read")
    ap.add_argument("--no-corpus", action="store_true", help="leave the scores part out")
    ap.add_argument("--no-modules", action="store_true", help="leave the modules part out")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--pack", type=Path, default=None, help="write the data read as uint8 mel to this folder"
    )
    args = ap.parse_args(argv)
    if args.pack:
        return pack(args.data or [DATA, DATA_CORPUS, DATA_MODULES], args.pack)
    items = load(args.data)
    if args.no_corpus:
        items = [it for it in items if not it["group"].startswith("corpus:")]
    if args.no_modules:
        items = [it for it in items if not it["group"].startswith("modules:")]
    nets = [train_one(args, items, seed) for seed in args.seeds]
    if args.out:
        export(nets, args.out, f"beatnet-ens{len(nets)}-c{args.channels}-p{beatnet.POOL}")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def pack(paths: list[Path], folder: Path) -> int:
    """Each beatset file again, its log-mel as uint8 (:data:`MEL_STEP` dB steps), the whole
    file xz-compressed (``NAME.npz.xz``, about 40 % of the float16 npz)."""
    import io
    import lzma

    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "mel"}
            mel = z["mel"].astype(np.float32)
        q = np.clip(np.round((mel - MEL_FLOOR) / MEL_STEP), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        np.savez(buf, mel_u8=q, **arrays)
        out = folder / f"{path.name}.xz"
        out.write_bytes(lzma.compress(buf.getvalue(), preset=6))
        print(f"wrote {out}", file=sys.stderr)
    return 0


def train_one(args: argparse.Namespace, items: list[dict], seed: int):
    """One member: trained from ``seed``, the epoch with the best validation phase kept."""
    import torch

    def is_val(group: str) -> bool:
        return fold_of(group, args.folds) == args.fold

    torch.manual_seed(seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(seed)
    val = [it for it in items if is_val(it["group"]) and not it["group"].startswith("groove:")]
    gval = [it for it in items if is_val(it["group"]) and it["group"].startswith("groove:")]
    train = items if args.all else [it for it in items if not is_val(it["group"])]

    def kind(group: str) -> int:
        return 1 if group.startswith("groove:") else 2 if group.startswith("corpus:") else 0

    pools = [[it for it in train if kind(it["group"]) == k] for k in range(3)]
    corpus_share = args.corpus_share if pools[2] else 0.0  # else the real music's again
    shares = [1.0 - args.groove_share - corpus_share, args.groove_share, corpus_share]
    pools, shares = (
        [p for p in pools if p],
        [s for p, s in zip(pools, shares, strict=True) if p],
    )
    shares = [s / sum(shares) for s in shares]
    print(
        f"train {' + '.join(str(len(p)) for p in pools)} excerpts (real, grooves, scores; "
        f"shares {', '.join(f'{s:.2f}' for s in shares)}), validation {len(val)} + {len(gval)}",
        file=sys.stderr,
    )
    net = build(args.channels, args.dropout).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * args.steps)
    lossf = torch.nn.BCEWithLogitsLoss()
    best, best_state = -1.0, None
    for epoch in range(args.epochs):
        t0 = time.time()
        net.train()
        total = 0.0
        for _ in range(args.steps):
            x, y = sample(pools, shares, rng, args.batch)
            logits = net(torch.from_numpy(x).to(device))
            loss = lossf(logits, torch.from_numpy(y).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        net.eval()
        with torch.no_grad():

            def act(it: dict) -> np.ndarray:
                x = torch.from_numpy(it["x"][None]).to(device)
                return torch.sigmoid(net(x))[0].cpu().numpy()

            acts = [act(it) for it in val]
            gacts = [act(it) for it in gval]
        hit_net, hit_ons = phase_hits(val, acts) if val else (0.0, 0.0)
        ghit_net, ghit_ons = phase_hits(gval, gacts) if gval else (0.0, 0.0)
        print(
            f"epoch {epoch}: loss {total / args.steps:.4f}, validation phase network "
            f"{hit_net:.3f} onsets {hit_ons:.3f}; grooves network {ghit_net:.3f} onsets "
            f"{ghit_ons:.3f} ({time.time() - t0:.0f} s)",
            file=sys.stderr,
        )
        score = hit_net + ghit_net if not (args.all or args.last_epoch) else epoch
        if score >= best:
            best = score
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.cpu()


if __name__ == "__main__":
    raise SystemExit(main())
