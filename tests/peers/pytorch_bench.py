#!/usr/bin/python3
"""The peer shardnet's speed figures are compared with: the book's two networks in PyTorch
(Debian's python3-torch, whose CPU convolutions are oneDNN's), trained on random in-memory
batches exactly as `shardnet bench` trains them: forward, loss, backward, RMSprop step.

    /usr/bin/python3 tests/peers/pytorch_bench.py --net 8.1 --batch 64 --iters 200
    /usr/bin/python3 tests/peers/pytorch_bench.py --net 8.1 --batch 64 --iters 200 --ranks 2
    /usr/bin/python3 tests/peers/pytorch_bench.py --net 8.7 --batch 32 --iters 5
    /usr/bin/python3 tests/peers/pytorch_bench.py --net vgg16 --batch 32 --iters 2 --inference

PyTorch's default layout is NCHW; --channels-last runs NHWC, shardnet's layout, which oneDNN
prefers on AVX-512. Each process runs one thread (torch.set_num_threads(1)); --ranks N starts N processes under
DistributedDataParallel with the gloo backend on this host, batch per process, and reports the
aggregate rate. glibc is told to keep freed memory (no mmap, no trim) before torch is loaded:
page faults are expensive on some VMs, and without this PyTorch re-faults its activations every
step and runs several times slower than it can. Prints one line: "pytorch NET: R images/s ..."
"""
import argparse
import os
import sys
import time

TUNED = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "17179869184",
         "MALLOC_TOP_PAD_": "1073741824"}
if any(os.environ.get(k) != v for k, v in TUNED.items()):
    os.environ.update(TUNED)
    os.execv(sys.executable, [sys.executable] + sys.argv)  # glibc reads these at start

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def listing_8_1():
    """Listing 8.1: 28x28x1, three 3x3 convolutions, softmax over 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 3 * 128, 10)), (1, 28, 28), 10


def listing_8_7():
    """Listing 8.7 without augmentation: 180x180x3, five convolutions, one sigmoid unit."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 256, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(256, 256, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(7 * 7 * 256, 1)), (3, 180, 180), 1


def vgg16_base():
    """keras.applications.VGG16(include_top=False) at 180x180x3: 13 convolutions, 5 poolings."""
    layers, c = [], 3
    for filters, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            layers += [nn.Conv2d(c, filters, 3, padding=1), nn.ReLU()]
            c = filters
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers), (3, 180, 180), None


def run(rank, args):
    torch.set_num_threads(1)
    torch.manual_seed(1337)
    if args.ranks > 1:
        import torch.distributed as dist
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    model, shape, classes = {"8.1": listing_8_1, "8.7": listing_8_7, "vgg16": vgg16_base}[args.net]()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if args.ranks > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x = (torch.rand(args.batch, *shape) * 255).to(memory_format=fmt)
    if args.inference:
        model.eval()
        with torch.no_grad():
            for _ in range(2):
                model(x)
            t0 = time.perf_counter()
            for _ in range(args.iters):
                model(x)
            seconds = time.perf_counter() - t0
        print(f"pytorch {args.net}: {args.batch * args.iters / seconds:.1f} images/s inference, "
              f"1 thread, batch {args.batch}, {'NHWC' if args.channels_last else 'NCHW'}, "
              f"torch {torch.__version__}", flush=True)
        return
    if classes is None:  # a base alone: train it against its outputs' mean, as a stand-in loss
        loss_fn = lambda out, _: out.mean()  # noqa: E731
        y = None
    elif classes == 1:
        loss_fn = nn.BCEWithLogitsLoss()
        y = torch.randint(0, 2, (args.batch, 1)).float()
    else:
        loss_fn = nn.CrossEntropyLoss()
        y = torch.randint(0, classes, (args.batch,))

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x / 255.0), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if args.ranks > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    if args.ranks > 1:
        dist.barrier()
    seconds = time.perf_counter() - t0
    if rank == 0:
        rate = args.batch * args.ranks * args.iters / seconds
        print(f"pytorch {args.net}: {rate:.0f} images/s training, {args.ranks} process"
              f"{'es' if args.ranks > 1 else ''} x 1 thread, batch {args.batch} per process, "
              f"{'NHWC' if args.channels_last else 'NCHW'}, torch {torch.__version__}",
              flush=True)
    if args.ranks > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=["8.1", "8.7", "vgg16"], default="8.1")
    p.add_argument("--inference", action="store_true", help="forward passes only, no_grad")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--channels-last", action="store_true",
                   help="NHWC tensors (torch.channels_last) instead of PyTorch's default NCHW")
    args = p.parse_args()
    if args.ranks > 1:
        import torch.multiprocessing as mp
        mp.spawn(run, args=(args,), nprocs=args.ranks)
    else:
        run(0, args)


if __name__ == "__main__":
    main()
