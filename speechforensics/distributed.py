"""`evaluate` and `detect` on a Ray cluster (`--engine ray [--address ADDR]`).

Two stages, as on one machine with --batch: CPU tasks prepare each clip (decode, faces,
landmarks, crops, audio: evaluate.prepare_item, through the cache), and scorer actors hold the
backend's model and judge the prepared clips, several per call (evaluate.judge_group) — one
actor per GPU when the cluster has GPUs, else one on the CPUs. A prepared clip goes from its
task to a scorer through Ray's object store (a second return value: it never reaches the
driver). The driver keeps the records, the resume and the output files: evaluate.evaluate takes
a RayEngine as its `engine` and writes what it yields, one flushed line per record, exactly as
for the local engine.

Why Ray core (tasks, actors, `ray.wait`) and not Ray Data: the driver submits clips from the
list lazily and keeps at most `window` of them anywhere in the pipeline (preparing, prepared,
being scored), so a million-video list streams through in bounded memory and fast preparers
cannot flood a slow scorer (backpressure); it needs no pandas/pyarrow (Ray core alone is the
extra); and it sees every clip's fate. A task whose worker process or node dies is re-run by
Ray (`max_retries`), a scorer restarted with its pending calls (`max_restarts`,
`max_task_retries`), a lost prepared clip rebuilt from its lineage; past that the driver starts
the clip again from the beginning, ATTEMPTS times, and a clip still lost ends the run with one
line after every other record is written, so a rerun does only what is missing.

Inputs: paths every node sees (a shared filesystem, the same mount point everywhere); URIs such
as s3:// are not read. Every node needs speechforensics installed (and the model's checkpoint
at the same path, for avhubert).
"""

import collections
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
from tqdm import tqdm

from .backends import AVHubertBackend, LiteBackend, choose, load_backend
from .errors import SpeechForensicsError, describe
from .evaluate import EvalConfig, backend_of, batch_size, judge_group, prepare_item, remembered
from .pipeline import judge, prepare

TASK_RETRIES = 3  # Ray re-runs a task, or a scorer's call, whose worker process or node died
ATTEMPTS = 2  # then the driver prepares and scores the clip again, this many times more
CALLS_PER_SCORER = 2  # calls queued at a scorer: one judging, the next one's clips ready
AHEAD_PER_CPU = 2  # clips preparing or prepared, per CPU of the cluster (the window)
SCORER_CPUS = {"lipsync-lite": 0.0, "avhubert": 1.0}  # a CPU scorer's reservation: lite's
# judging costs ~3 % of preparing (benchmarks/ray_engine.py), avhubert's a core's worth
CLASSES = {"lipsync-lite": LiteBackend, "avhubert": AVHubertBackend}


def _ray():
    """The ray module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise SpeechForensicsError(
            "--engine ray needs Ray: pip install 'speechforensics[ray]'"
        ) from e
    return ray


@dataclasses.dataclass(frozen=True)
class Stages:
    """What the tasks and the scorers run (picklable: module functions and partials)."""

    prepare: Callable  # item -> (item, clip or None, outcome dict), on a CPU
    load: Callable  # () -> backend, once per scorer
    judge: Callable  # ([(item, clip, outcome)], backend=) -> [result dict], in a scorer
    backend: str  # the backend's name (what a scorer reserves)
    batch: int  # clips per call to a scorer


class RayEngine:
    """Runs on the cluster at `address` (None: a local one started now with `num_cpus`, default
    every core); connects on first use, and stays connected for the process's life."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        _ray()  # the install hint before any work
        self.address, self.num_cpus = address, num_cpus

    def __call__(
        self, items, config: EvalConfig, cache_dir: Path, progress: bool, batch: int | None
    ) -> Iterator[dict]:
        """evaluate's records of `items`, as they finish (evaluate.evaluate's `engine`)."""
        if config.protocol == "paper":
            raise SpeechForensicsError(
                "--protocol paper runs one clip at a time as published: drop --engine ray"
            )
        name, _ = choose(config.backend, config.checkpoint)
        crops = CLASSES[name].needs_crops
        stages = Stages(
            functools.partial(prepare_item, config=config, cache_dir=cache_dir, crops=crops),
            functools.partial(backend_of, config),
            functools.partial(judge_group, config=config),
            name,
            batch_size(config, batch),
        )
        return self.run(items, stages, progress)

    def detect(self, videos: list[Path], args, progress: bool) -> Iterator[dict]:
        """detect's result per video (`args`: the command's), as they finish; a failed video's
        is {file, error}."""
        name, _ = choose(args.backend, args.checkpoint)
        load = functools.partial(
            load_backend,
            args.backend,
            args.checkpoint,
            args.lite_params,
            args.calibration,
            args.device,
            args.dtype,
        )
        batch = batch_size(EvalConfig(args.backend, args.checkpoint, device=args.device), None)
        stages = Stages(
            functools.partial(
                _prepare_video, max_seconds=args.max_seconds, crops=CLASSES[name].needs_crops
            ),
            load,
            functools.partial(_judge_videos, threshold=args.threshold),
            name,
            batch,
        )
        return self.run(videos, stages, progress)

    def run(self, items: Iterable, stages: Stages, progress: bool = False) -> Iterator[dict]:
        """Each item's result, as they finish (see the module's docstring)."""
        ray = self.connect()
        items = list(items)
        scorers, nodes = _start_scorers(ray, stages)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        window = AHEAD_PER_CPU * cpus + CALLS_PER_SCORER * stages.batch * len(scorers)
        bar = tqdm(total=len(items), unit="video", disable=not progress)
        try:
            for result in _Pipeline(ray, stages, scorers, nodes, window).results(items):
                yield result
                bar.update()
        finally:
            bar.close()
            for scorer in scorers:
                ray.kill(scorer)

    def connect(self):
        ray = _ray()
        if not ray.is_initialized():
            local = self.address is None
            ray.init(
                address=self.address or "local",  # never a cluster found by chance
                num_cpus=self.num_cpus if local else None,
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        return ray


def _start_scorers(ray, stages: Stages) -> tuple[list, list[str]]:
    """(scorers, the node of each): one per GPU of the cluster; without GPUs, one per node
    (reserving SCORER_CPUS) judging the clips its node prepared, so they never cross nodes; held
    there (a soft affinity is not kept for a restartable actor without resources), and dropped
    by the driver when its node is lost."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    retries = {"max_restarts": TASK_RETRIES, "max_task_retries": TASK_RETRIES}
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        actor = ray.remote(num_gpus=1, num_cpus=1, **retries)(Scorer)
        scorers = [actor.remote(stages.load, stages.judge) for _ in range(gpus)]
    else:
        actor = ray.remote(num_cpus=SCORER_CPUS[stages.backend], **retries)(Scorer)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
        scorers = [
            actor.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(stages.load, stages.judge)
            for node in nodes
        ]
    return scorers, ray.get([scorer.node.remote() for scorer in scorers])


class Scorer:
    """A Ray actor holding one backend: judges prepared clips, several per call."""

    def __init__(self, load: Callable, judge: Callable):
        self.backend, self.judge = load(), judge
        self.where = _ray().get_runtime_context().get_node_id()

    def node(self) -> str:
        return self.where

    def score(self, entries: list[tuple], *clips) -> list[dict]:
        """The results of (item, outcome) `entries` and their prepared `clips`."""
        group = [(item, clip, outcome) for (item, outcome), clip in zip(entries, clips)]
        return [result | {"node": self.where} for result in self.judge(group, backend=self.backend)]


def _prepare_task(prepare: Callable, item) -> tuple:
    """((outcome, node), clip): two objects, so that the driver fetches only the small one."""
    cv2.setNumThreads(1)  # one task per reserved core
    _, clip, outcome = prepare(item)
    return (outcome, _ray().get_runtime_context().get_node_id()), clip


class _Pipeline:
    """The driver's loop: prepare tasks, then scorer calls, at most `window` clips in flight."""

    def __init__(self, ray, stages: Stages, scorers: list, nodes: list[str], window: int):
        self.ray, self.stages, self.window = ray, stages, window
        self.scorers, self.nodes = scorers, nodes
        self.prepare = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, num_returns=2)(
            _prepare_task
        )
        self.retry = collections.deque()  # (item, attempt) to start again
        self.preparing = {}  # outcome ref -> (item, attempt, clip ref)
        self.ready = collections.defaultdict(list)  # node -> [(item, attempt, outcome, clip)]
        self.scoring = {}  # result ref -> (scorer index, [(item, attempt)])
        self.calls = [0] * len(scorers)  # calls queued at each scorer
        self.dead = set()  # scorers Ray could not restart (their node was lost)
        self.lost = []  # (item, why), past every attempt

    def results(self, items: list) -> Iterator[dict]:
        pending, self.more = iter(items), True  # submitted as room frees up, never all at once
        while True:
            self._submit(pending)
            self._dispatch(final=not self.preparing)  # then nothing more is coming, or no room
            waiting = [*self.preparing, *self.scoring]
            if not waiting:  # nothing in flight after submitting and dispatching: all done
                break
            done, _ = self.ray.wait(waiting, num_returns=1)
            if done[0] in self.preparing:
                self._prepared(done[0])
            else:
                yield from self._scored(done[0])
        if self.lost:
            item, why = self.lost[-1]
            raise SpeechForensicsError(
                f"{len(self.lost)} of {len(items)} clips were lost with their Ray workers "
                f"(last: {_name(item)}: {why}); every other result is saved: rerun to do the rest"
            )

    def _in_flight(self) -> int:
        scoring = sum(len(group) for _, group in self.scoring.values())
        ready = sum(len(clips) for clips in self.ready.values())
        return len(self.preparing) + ready + scoring

    def _submit(self, pending: Iterator) -> None:
        while self._in_flight() < self.window and (self.retry or self.more):
            if self.retry:
                item, attempt = self.retry.popleft()
            elif (item := next(pending, _END)) is _END:
                self.more = False
                return
            else:
                attempt = 0
            outcome, clip = self.prepare.remote(self.stages.prepare, item)
            self.preparing[outcome] = (item, attempt, clip)

    def _dispatch(self, final: bool) -> None:
        """Send full batches (when `final`, partial ones too) to scorers with room: those on the
        node that prepared the clips, if it has any."""
        for node, ready in self.ready.items():
            while ready and (len(ready) >= self.stages.batch or final):
                index = self._scorer_for(node)
                if index is None:
                    break
                group, ready[:] = ready[: self.stages.batch], ready[self.stages.batch :]
                entries = [(item, outcome) for item, _, outcome, _ in group]
                ref = self.scorers[index].score.remote(entries, *(clip for *_, clip in group))
                self.scoring[ref] = (index, [(item, attempt) for item, attempt, _, _ in group])
                self.calls[index] += 1

    def _scorer_for(self, node: str) -> int | None:
        """The least busy scorer on `node` (on any node when it has none), if one has room."""
        alive = [i for i in range(len(self.scorers)) if i not in self.dead]
        if not alive:
            raise SpeechForensicsError(
                "every Ray scorer was lost with its node; the finished results are saved: rerun"
            )
        near = [i for i in alive if self.nodes[i] == node]
        index = min(near or alive, key=self.calls.__getitem__)
        return index if self.calls[index] < CALLS_PER_SCORER else None

    def _prepared(self, ref) -> None:
        item, attempt, clip = self.preparing.pop(ref)
        try:
            outcome, node = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a Ray failure (the clip's own are in outcome)
            self._again(item, attempt, e)
        else:
            self.ready[node].append((item, attempt, outcome, clip))

    def _scored(self, ref) -> Iterator[dict]:
        index, group = self.scoring.pop(ref)
        self.calls[index] -= 1
        try:
            results = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a Ray failure: the clips start again
            if isinstance(e, self.ray.exceptions.RayActorError):  # past its restarts
                self.dead.add(index)
            for item, attempt in group:
                self._again(item, attempt, e)
        else:
            yield from results

    def _again(self, item, attempt: int, e: Exception) -> None:
        if attempt < ATTEMPTS:
            self.retry.append((item, attempt + 1))
        else:
            self.lost.append((item, describe(e)))


_END = object()


def _name(item) -> str:
    return str(getattr(item, "path", item))


# --- the stages of evaluate and of detect ---------------------------------------------------


def _prepare_video(video: Path, max_seconds: float | None, crops: bool) -> tuple:
    try:
        return video, prepare(video, max_seconds, crops=crops), {}
    except Exception as e:  # noqa: BLE001 - one file never ends the batch
        return video, None, {"error": describe(e, video)}


def _judge_videos(group: list[tuple], backend, threshold: float | None) -> list[dict]:
    clips = [clip for _, clip, _ in group if clip is not None]
    memory = remembered(backend, clips) if len(clips) > 1 else backend
    results = []
    for video, clip, outcome in group:
        try:
            if clip is None:
                raise SpeechForensicsError(outcome["error"])
            results.append(judge(clip, memory, threshold))
        except Exception as e:  # noqa: BLE001 - one file never ends the batch
            results.append({"file": str(video), "error": describe(e, video)})
    return results
