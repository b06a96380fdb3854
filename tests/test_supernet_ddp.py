"""DistributedDataParallel on CPU: two gloo processes (torch.multiprocessing, forked from the
test process: a spawned one would import torch again, seconds each)."""

from __future__ import annotations

import copy
import json
import os
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from supernet.train import TrainConfig, read_log, sandwich_step, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str, model: torch.nn.Module,
            archs: list, batches: list) -> None:
    """One rank: `model` (the same on each), the subnets of a sandwich step, and
    batches[rank][micro], each rank's two micro-batches."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)

    # 1. A sandwich step through DDP, with gradient accumulation over two micro-batches, gives
    #    the average over ranks of the gradients each rank computes alone.
    alone = copy.deepcopy(model)
    net = DDP(model, find_unused_parameters=True)
    for micro in range(2):
        x, y = batches[rank][micro]
        sandwich_step(net, x, y, archs, sync=micro == 1, loss_scale=0.5)
        sandwich_step(alone, x, y, archs, loss_scale=0.5)
    for (name, p), q in zip(model.named_parameters(), alone.parameters()):
        expected = q.grad.clone()
        dist.all_reduce(expected)
        expected /= world
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7, msg=name)
    local = torch.nn.utils.parameters_to_vector([p.grad for p in alone.parameters()])
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    assert not torch.equal(gathered[0], gathered[1]), "ranks should see different batches"

    # 2. The training entry point runs under the same process group.
    cfg = TrainConfig(out=os.path.join(tmp, "run"), space=os.path.join(tmp, "space.yaml"),
                      dataset=os.path.join(tmp, "corpus.txt"), steps=3, batch_size=2,
                      block_size=16, warmup=1, eval_interval=3, eval_tokens=256, eval_random=1,
                      log_interval=1, progress=False)
    train(cfg)                                   # destroys the process group at the end
    with open(os.path.join(tmp, f"done{rank}.json"), "w") as f:
        json.dump({"rank": rank}, f)
    # A forked rank leaves at once: the exit handlers it inherited from the test process (a
    # Ray client, pools of earlier tests) are not its own, and one of them once hung a rank
    # after its work was done.
    os._exit(0)


@pytest.mark.slow
def test_two_process_gloo_training(tiny, tmp_path):
    tiny.write_files(tmp_path, corpus=tiny.corpus_text(200))
    space = tiny.space
    archs = [space.largest(), space.smallest(), space.sample(random.Random(4))]
    batches = [[tiny.batch(seed=10 * rank + micro) for micro in range(2)] for rank in range(2)]
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), tiny.model(seed=0), archs,
                                      batches), nprocs=2, join=True, start_method="fork")
    assert (tmp_path / "done0.json").is_file() and (tmp_path / "done1.json").is_file()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["world_size"] == 2
    assert [r["step"] for r in read_log(tmp_path / "run") if r["kind"] == "train"] == [1, 2, 3]
    assert (tmp_path / "run" / "best.pt").is_file()
