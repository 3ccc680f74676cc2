"""``Sequential``: a stack of layers with Keras' compile / fit / evaluate /
predict / save API.

Shapes: ``x`` is ``(N, *input_shape)`` channels last; for classification
``y`` holds integer labels ``(N,)`` (sparse cross-entropy) or one-hot rows
``(N, K)``; ``predict`` returns ``(N, *output_shape)``.

The model drives its layers through the layer contract
(``core/layers/base.py``): it keeps the context each forward pass returns,
hands it back to that layer's backward pass, collects the parameter
gradients backward returns, and owns the workspace of reusable buffers the
layers borrow from. It passes a generator to the layers that draw random
numbers (dropout), derived from the model seed, the layer and the optimizer
step, so a run resumed from a saved model draws what an uninterrupted run
would.
"""
import math
import sys
import warnings

import numpy as np
from tqdm.auto import tqdm

from . import callbacks as callbacks_module
from . import config, losses, metrics as metrics_module, optimizers, parallel, shardprocs
from .data import ArrayBatches, SourceBatches, is_source, unpack_batch
from .exceptions import ConfigError, InputError, NotFittedError, ShapeError, TrainingError
from .layers import LAYER_CLASSES
from .activations import ReLU
from .layers.base import ActivationMixin, Layer
from .layers.activation import Activation
from .layers.conv import Conv
from .layers.normalization import BatchNormalization
from .layers.pooling import MaxPooling
from .inference import InferencePlan
from .input import Input
from .registry import serialize, snake_case
from .serialization import register_model_class, save_model
from .utils import check_array, check_int
from .workspace import Workspace


#: floating-point operations (forward, estimated by ``_work_per_sample``) a shard of a batch
#: needs before the batch is split over threads. Measured on 2 cores: the tutorial network
#: at batch 64 (4 million a shard) ran slower split, LeNet-5 at batch 64 (45 million) faster
SHARD_MIN_WORK = 8_000_000
#: and the largest layer output of a shard must hold this many elements: shards of small
#: arrays spend their time in Python and NumPy's per-call overhead, which the threads do one
#: at a time under the GIL. The 8x8 digits at batch 32 (largest output 32,768 elements for
#: two shards, 12 MFLOP each) trained 1.6-1.9x slower split than whole
SHARD_MIN_ELEMENTS = 100_000
#: forward floating-point operations of a whole batch under which its matrix products are
#: too small for OpenBLAS to run on more than one thread, so that holding it to one costs
#: without saving: it threads an ``(m, k) @ (k, n)`` product only from ``m * n * k`` = 65,536
#: x 4 on (``SMP_THRESHOLD_MIN`` x ``GEMM_MULTITHREAD_THRESHOLD``, interface/gemm.c). A bound,
#: not exact: the forward estimate bounds each forward product, but the input gradient computed
#: as a forward convolution runs over the input's positions (up to 2.8x a small 'valid' layer's
#: product), and a matrix-vector product is threaded from ``m * n`` = 2,304 x 4 on
#: (interface/gemv.c); past those the library threads as it would outside the engine. The
#: tutorial network's dense layer at batch one, ``(1, 1352) @ (1352, 10)``, took 2.7-2.9 us at
#: one BLAS thread and at two (and its gradient 3.4-3.8 us)
BLAS_ONE_THREAD_WORK = 2 * 65_536 * 4


@register_model_class
class Sequential:
    """A linear stack of layers.

    ``seed`` fixes every random choice the model makes: the initial weights of
    layers built without their own ``seed``, dropout masks and the shuffling
    in ``fit``. Without it a seed is drawn from ``core.config`` (see
    ``set_random_seed``).
    """

    def __init__(self, layers=None, name=None, seed=None):
        self.name = name or "sequential"
        self.seed = seed
        self._seed = int(seed) if seed is not None else config.draw_seed()
        self.layers = []
        self._input_shape = None
        self._input_dtype = None
        self._input_name = None
        self.built = False
        self.optimizer = self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.workspace = Workspace()
        self._noise_seeds = {}
        self._free_calls = 0
        self._weights_version = 0  # bumped when weights may have changed in place (inference cache)
        self._crew_generation = 0  # bumped by build and compile: a crew of shard processes is then replaced
        self._inference = None
        for layer in layers or []:
            self.add(layer, _build=False)
        if self._input_shape is not None and self.layers:
            self.build()

    # ----------------------------------------------------------------- layers
    def add(self, layer, _build=True):
        """Append a layer (or an ``Input`` as the very first entry)."""
        if isinstance(layer, Input):
            if self.layers or self._input_shape is not None:
                raise ConfigError("Input must be the first entry of a Sequential model")
            self._input_shape = layer.shape
            self._input_dtype = layer.dtype
            self._input_name = layer.name
            return
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential accepts layers from core.layers, got {type(layer).__name__}")
        if any(layer is lay for lay in self.layers):
            raise ConfigError(f"layer {layer.name!r} is already in this model; a layer instance can appear once")
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            taken = {lay.name for lay in self.layers}
            i = 0
            while (f"{base}_{i}" if i else base) in taken:
                i += 1
            layer.name = f"{base}_{i}" if i else base
        if not self.layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self.layers.append(layer)
        self.reset_inference()
        if _build and self._input_shape is not None:
            self.build()

    def _layer_rng(self, index):
        return np.random.default_rng([self._seed, index])

    def _build_layer(self, index, shape):
        layer = self.layers[index]
        if layer.dtype is None and self._input_dtype is not None:
            layer.dtype = self._input_dtype
        layer.build(shape, rng=self._layer_rng(index))

    def build(self, input_shape=None):
        """Create all weights. ``input_shape`` includes the batch axis, as in
        Keras (``model.build((None, 28, 28, 1))``); it may be omitted when the
        model starts with ``Input``."""
        if input_shape is not None:
            shape = tuple(input_shape)[1:]
            if self._input_shape is not None and shape != self._input_shape:
                raise ShapeError(f"build: model declares input shape {self._input_shape}, got {shape} (batch axis removed)")
            self._input_shape = tuple(int(d) for d in shape)
        if self._input_shape is None:
            raise NotFittedError("the model has no input shape: start it with Input(shape=...), call build(), "
                                 "or pass data to fit/predict")
        if not self.layers:
            raise ConfigError("the model has no layers")
        shape = self._input_shape
        for i, layer in enumerate(self.layers):
            try:
                if not (layer.built and layer.input_shape == tuple(shape)):
                    self._build_layer(i, shape)
            except (ShapeError, InputError, ConfigError) as exc:
                raise type(exc)(f"while building layer {i} ({layer.name!r}) for input shape {shape}: {exc}") from None
            shape = layer.output_shape
        self.built = True
        self._crew_generation += 1
        self._sample_size_cache = None  # the shard size follows the layers (_shard_ranges)
        self._moved_relus = None  # and so do the ReLUs moved after pooling
        self._filters_first = None  # and the convolutions laid out filters first for their pooling
        self.reset_inference()
        # only layers after the first trainable one need the gradient of their input
        self._first_trainable = next((i for i, lay in enumerate(self.layers) if lay.params), len(self.layers))
        self.workspace.clear()
        for extra in self.__dict__.get("_shard_workspaces", ()):
            extra.clear()

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        return (None,) + tuple(self.layers[-1].output_shape) if self.built else None

    @property
    def dtype(self):
        return self.layers[0].dtype if self.built else (self._input_dtype or config.floatx())

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Choose the optimizer, the loss and the metrics reported during training.
        ``loss_weights`` (one number, or a list or dict of one for the single
        output) scales the loss and so its gradients."""
        if loss is None:
            raise ConfigError("compile: a loss is required, e.g. loss='sparse_categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._loss_weight = _single_loss_weight(loss_weights)
        loss_name = snake_case(type(self.loss).__name__)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ConfigError(f"compile: metrics must be a list, got {type(metrics).__name__}")
        self._metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        self.compiled = True
        self._crew_generation += 1

    def _fused_output(self):
        """Whether the loss is computed from the last layer's pre-activation
        (softmax + cross-entropy or sigmoid + binary cross-entropy)."""
        last = self.layers[-1]
        return (isinstance(last, ActivationMixin) and not self.loss.from_logits
                and self.loss.fuses_with is not None and last.activation.name == self.loss.fuses_with)

    def _require_compiled(self, what):
        if not self.compiled:
            raise NotFittedError(f"{what}: the model must be compiled first (model.compile(optimizer=..., loss=...))")

    # ------------------------------------------------------------ validation
    def _check_x(self, x, what):
        arr = check_array(x, f"{what}: x")
        if not self.built:
            self._input_shape = self._input_shape or tuple(arr.shape[1:])
            self.build()
        expected = self._input_shape
        if arr.ndim != len(expected) + 1 or tuple(arr.shape[1:]) != tuple(expected):
            first = self.layers[0]
            raise ShapeError(f"{what}: the model expects x of shape (batch, {', '.join(map(str, expected))}) "
                             f"(input of layer {first.name!r}, {type(first).__name__}), found x of shape {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _check_y(self, y, n, what):
        if y is None:
            raise InputError(f"{what}: y (the targets) is required")
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ShapeError(f"{what}: x has {n} samples but y has {y.shape[0] if y.ndim else 'no'} entries")
        kind = y.dtype.kind  # (dtype kinds: a cheap test on a hot path)
        if kind == "c":
            raise InputError(f"{what}: y must be real numbers, found complex dtype {y.dtype}")
        if kind not in "biuf":
            raise InputError(f"{what}: y must hold numbers, found dtype {y.dtype}")
        if kind == "f" and not np.isfinite(y).all():
            raise InputError(f"{what}: y contains NaN or infinite values")
        return self.loss.check_targets(y, self.layers[-1].output_shape[-1])

    def _check_batch_size(self, batch_size, default=32):
        if batch_size is None:
            return default
        return check_int(batch_size, "batch_size")

    # ------------------------------------------------------------- computing
    def _noise_rng(self, index, step):
        """The generator layer ``index`` draws from at optimizer step ``step``: it depends
        only on the model seed (or the layer's own seed), the layer and the step."""
        base = self._noise_seeds.get(index)
        if base is None:
            layer = self.layers[index]
            origin = layer.seed if layer.seed is not None else [self._seed, index]
            base = self._noise_seeds[index] = int(np.random.default_rng(origin).integers(2**31 - 1))
        return np.random.default_rng([base, step])

    def run_forward(self, x, training=False, *, context=True, logits=False, step=None, workspace=None):
        """Run every layer on the checked batch ``x``: ``(outputs, contexts)``, one
        entry per layer. ``logits`` makes the last layer return its pre-activation.
        ``step`` picks the random draws of stochastic layers in training (by
        default a fresh one per call). ``workspace`` (default: the model's) lends
        the buffers; outputs and contexts live until it is reclaimed. In training a
        first convolution may pool its own output (``_pools_first_layer``): ``outputs[0]``
        is then the pooling's output, as ``outputs[1]``."""
        ws = self.workspace if workspace is None else workspace
        if training and step is None:
            step = 2**40 + self._free_calls  # outside fit: a new draw per call, never an optimizer step's
            self._free_calls += 1
        outputs, contexts = [], []
        fused = training and self._pools_first_layer(x, training if context is None else bool(context))
        for i, layer in enumerate(self.layers):
            rng = self._noise_rng(i, step) if training and layer.stochastic else None
            options = self.forward_options(i, training, logits)
            if fused and i < 2:  # the first convolution pools its own output (``_pools_first_layer``)
                options = dict(options, pool=self.layers[1], **self.forward_options(1, training)) if i == 0 else \
                    {"fused": True}
            x, ctx = layer.forward(x, training, rng, context=context, workspace=ws, **options)
            outputs.append(x)
            contexts.append(ctx)
        return outputs, contexts

    def _pools_first_layer(self, x, keep):
        """Whether the training forward pass runs the first layer, a convolution laid out filters
        first (``_convolutions_filters_first``) with the max pooling right after it, as one
        (``Conv.forward(pool=...)``): each block of its output pooled as it is computed, the
        whole output never written, nor its gradient in the backward pass, which the first
        layer's input gradient is never asked of in training. The pooling's output stands for
        both layers' outputs (``outputs[0]`` and ``outputs[1]``); the values are the same, the
        bias gradient up to float rounding. Training steps in the time of the two layers run one
        after the other, in separate processes (``benchmarks --alt-core``): conv3d_64_b4 0.89x at
        one thread and 0.86x at two, conv3d_32_b8 1.00x and 0.97x (two models by turns in one
        process: 0.90x and 0.92x); the step's peak memory growth 61 MB against 123, 15 against 34.
        Of the benchmark cases only these two fuse: LeNet-5's and the tutorial network's first
        layers run whole, and ``ScanClassifier``'s has a batch norm before its pooling."""
        layers = self.layers
        return (len(layers) > 1 and 0 in self._convolutions_filters_first() and isinstance(layers[1], MaxPooling)
                and layers[0].can_pool_blocks(layers[1], x, keep))

    def forward_options(self, i, training, logits=False):
        """The keyword arguments ``run_forward`` gives layer ``i`` besides its input: a ReLU
        moved after the pooling (``_relus_after_pooling``), the filters-first layout
        (``_convolutions_filters_first``), the pre-activation of the last layer (``logits``).
        ``benchmarks.experiments.layer_times`` times each layer so."""
        moved = self._relus_after_pooling() if training else ()
        if training and i in self._convolutions_filters_first():
            return {"activation": False, "filters_first": True}
        if logits and i == len(self.layers) - 1 or i in moved:
            return {"activation": False}
        if i - 1 in moved:
            return {"after": self.layers[i - 1].activation}
        return {}

    def _relus_after_pooling(self):
        """Indices of the convolutions and ``Activation`` layers whose ReLU the training forward
        pass applies after the max pooling that follows them, to the 4-8x smaller pooled output
        (and its derivative there too). The gradients are the same to the bit: where a
        window's maximum is positive, ReLU keeps the window's first maximum where it was, and
        where it is not, both orders give the window a zero gradient. The layer's own output
        (``outputs[i]``) is then its pre-activation (an ``Activation`` layer passes its input
        on); inference and ``core.explain`` run the layers unchanged."""
        moved = self.__dict__.get("_moved_relus")
        if moved is None:
            moved = self._moved_relus = frozenset(
                i for i, (layer, nxt) in enumerate(zip(self.layers, self.layers[1:]))
                if isinstance(layer, (Conv, Activation)) and type(layer.activation) is ReLU
                and isinstance(nxt, MaxPooling))
        return moved

    def _convolutions_filters_first(self):
        """Indices of the convolutions whose training forward pass lays their output out filters
        first, ``(filters, N, *out)`` seen through an ``(N, *out, filters)`` view, for the max
        pooling after them (``Conv.can_train_filters_first``: columns built channels first, which
        layers with few input channels do, at most ``FIRST_TRAIN_MAX_FILTERS`` filters, no
        activation before the pooling or a ReLU moved after it; a pooling without padding;
        ``Conv.forward`` also asks for a batch of ``FIRST_MIN_POSITIONS`` output positions). The
        product ``kernel.T @ cols`` runs faster with few filters, the pooling reads long rows and
        returns its input gradient in that layout, and the kernel gradient is taken from it
        directly: LeNet-5's and the Conv3D cases' first layer with its pooling 12-19 % faster
        (paired A/B, one thread). A trainable ``BatchNormalization``, an ``Activation`` whose
        ReLU is moved after the pooling, or both, may stand between them (the default
        ``ScanClassifier`` network's first block): batch norm keeps the layout
        (``core.layers.normalization``), the activation passes its input on. The values are
        those of the usual layout up to float32 rounding."""
        first = self.__dict__.get("_filters_first")
        if first is None:
            moved = self._relus_after_pooling()
            first = self._filters_first = frozenset(
                i for i, layer in enumerate(self.layers)
                if isinstance(layer, Conv) and layer.can_train_filters_first()
                and (i in moved or layer.activation.identity) and self._pooling_after(i))
        return first

    def _pooling_after(self, i):
        """Whether a max pooling without padding follows layer ``i``, directly or after a
        trainable ``BatchNormalization`` (a frozen one normalizes channels last), an
        ``Activation`` whose ReLU is moved after the pooling (``_relus_after_pooling``), or
        both, in that order."""
        layers, j = self.layers, i + 1
        if j < len(layers) and isinstance(layers[j], BatchNormalization) and layers[j].trainable:
            j += 1
        if j < len(layers) and isinstance(layers[j], Activation) and j in self._relus_after_pooling():
            j += 1
        return j < len(layers) and isinstance(layers[j], MaxPooling) and not layers[j].geometry.needs_pad

    def run_backward(self, contexts, grad, *, down_to=0, need_input_grad=True, workspace=None):
        """Backpropagate ``grad`` (the gradient of the last layer's output, or of its
        pre-activation when the forward ran with ``logits``) from the last layer
        down to layer ``down_to``: ``(input gradient of layer down_to, grads)``
        where ``grads[i]`` is layer i's dict of parameter gradients. After a training
        forward pass whose first layer pooled its own output (``_pools_first_layer``),
        ``down_to=1`` gives the gradient of that pooled output (the pooling passes it on)."""
        ws = self.workspace if workspace is None else workspace
        grads = [{} for _ in self.layers]
        for i in range(len(self.layers) - 1, down_to - 1, -1):
            need = i > down_to or need_input_grad
            grad, grads[i] = self.layers[i].backward(contexts[i], grad, need_input_grad=need, workspace=ws)
        return grad, grads

    def _outputs_and_loss(self, x, y, sample_weight, training, step=None, workspace=None):
        """Forward pass and loss of one batch: ``(outputs, loss, d loss / d last output, contexts)``;
        the outputs (probabilities) are computed only when metrics need them (else None)."""
        fused = self._fused_output()
        outputs, contexts = self.run_forward(x, training, context=training, logits=fused, step=step,
                                             workspace=workspace)
        out = outputs[-1]
        if fused:
            value, grad = self.loss.value_and_grad_logits(y, out, sample_weight)
            out = self.layers[-1].activation.forward(out) if self._metrics else None
        else:
            value, grad = self.loss.value_and_grad(y, out, sample_weight)
        if self._loss_weight != 1.0:
            value, grad = value * self._loss_weight, grad * grad.dtype.type(self._loss_weight)
        return out, value, grad, contexts

    def _regularization_loss(self):
        return sum(layer.regularization_loss() for layer in self.layers)

    def _train_step(self, x, y, sample_weight, where):
        # state that the forward pass replaces (batch-norm statistics), restored if the step fails
        state = [(layer, name, layer.params[name]) for layer in self.layers for name in layer.non_trainable]
        self.workspace.reclaim()
        down_to = min(self._first_trainable, len(self.layers) - 1)
        shards = self._shard_ranges(len(x))
        try:
            if shards is None:
                with self._threads_for_whole(len(x)):
                    out, value, grad, contexts = self._outputs_and_loss(x, y, sample_weight, True,
                                                                        step=self.optimizer.iterations)
            else:
                out, value, grads = self._sharded_pass(x, y, sample_weight, shards, True, down_to)
        except BaseException:
            for layer, name, value_before in state:
                layer.params[name] = value_before
            raise
        value += self._regularization_loss()
        if not math.isfinite(value):
            for layer, name, value_before in state:
                layer.params[name] = value_before
            raise TrainingError(f"the loss became {value} {where}; the weights and batch-norm statistics were left "
                                f"as they were before this batch. Lower the learning rate, scale the inputs, or use clipnorm")
        if shards is None:
            with self._threads_for_whole(len(x)):
                _, grads = self.run_backward(contexts, grad, down_to=down_to, need_input_grad=False)
        triples = []
        for i, layer in enumerate(self.layers):
            penalties = layer.regularization_grads()
            for name in layer.trainable_names():
                g = grads[i][name]
                if name in penalties:
                    g = g + penalties[name].astype(g.dtype, copy=False)
                triples.append((f"{i}/{name}", layer.params[name], g))
        self.last_gradients = {key: g for key, _, g in triples}
        self.optimizer.apply(triples)
        self._weights_version += 1  # the weights changed in place: the folded inference weights are stale
        return value, out

    # ------------------------------------------------------ sharded batches
    def _shard_ranges(self, n):
        """The ``(start, stop)`` rows of each thread's shard of a batch of ``n`` samples, or
        ``None`` to run the batch whole (one thread, a batch too small to split, or a call
        from inside a parallel region)."""
        threads = parallel.get_num_threads()
        if threads < 2 or n < 2 or parallel.inside_region():
            return None
        work, largest = self._sample_sizes()
        if SHARD_MIN_WORK > 0:
            threads = min(threads, max(1, int(work * n // SHARD_MIN_WORK)))
        if SHARD_MIN_ELEMENTS > 0:
            threads = min(threads, max(1, largest * n // SHARD_MIN_ELEMENTS))
        threads = min(threads, n)
        return parallel.sample_ranges(n, threads) if threads >= 2 else None

    def _threads_for_whole(self, n):
        """For a batch of ``n`` run whole: on this thread alone (``parallel.serial``: one BLAS
        thread, the layers' blocks one after the other) when it holds too little work to be
        split, since its products and blocks are too small for a second thread to pay; else the
        threads as set. The tutorial network's predict at batch 64, after ``set_num_threads(2)``,
        took 0.86 ms with its convolution's blocks on two threads against 0.63 ms on one. BLAS
        is left as it is for a batch under ``BLAS_ONE_THREAD_WORK``."""
        if parallel.get_num_threads() < 2 or parallel.inside_region():
            return parallel.NO_LIMIT
        work = self._sample_sizes()[0] * n
        if work >= 2 * SHARD_MIN_WORK:
            return parallel.NO_LIMIT
        return parallel.serial(blas=work >= BLAS_ONE_THREAD_WORK)

    def _sample_sizes(self):
        """``(work, largest)``: the estimated forward work of one sample (``_work_per_sample``) and
        the largest output of a layer for one sample, in elements (cached until the next build)."""
        sizes = self.__dict__.get("_sample_size_cache")
        if sizes is None:
            sizes = self._sample_size_cache = (_work_per_sample(self.layers),
                                               max(math.prod(layer.output_shape) for layer in self.layers))
        return sizes

    def _shard_workspaces_for(self, ranges):
        """``{start row: workspace}`` for the shards ``ranges``: the model's own (already
        reclaimed by the caller) for the first, extra ones kept by the model, reclaimed here,
        for the others."""
        extra = self.__dict__.setdefault("_shard_workspaces", [])
        while len(extra) < len(ranges) - 1:
            extra.append(Workspace())
        for ws in extra[:len(ranges) - 1]:
            ws.reclaim()
        return {a: ws for (a, _), ws in zip(ranges, [self.workspace] + extra)}

    def _sharded_pass(self, x, y, sample_weight, ranges, training, down_to=0):
        """Forward, loss and (in training) backward of one batch split into shards of samples, each
        run from start to end with its own workspace: shard 0 on this thread, the others in the
        model's shard processes (``core.shardprocs``, on Linux) or on threads (NumPy releases
        the GIL in its copies, ufuncs and products, so the shards run on separate cores). Batch
        normalization adds its sums over the shards (``core.parallel.ShardGroup``); dropout
        draws the whole batch's mask and keeps its rows. The loss and the gradients are the
        shards' parts added in shard order: the same, up to float rounding, as the whole batch
        at once, whatever the number of threads. Returns ``(outputs, loss, grads)`` (``grads``
        ``None`` outside training)."""
        n = len(x)
        step = self.optimizer.iterations if training else None
        message = {"op": "train" if training else "eval", "step": step, "down_to": down_to}
        workspaces = self._shard_workspaces_for(ranges)

        def work(rows):
            a, b = rows
            sw = None if sample_weight is None else sample_weight[a:b]
            return self._shard_part(x[a:b], y[a:b], sw, (b - a) / n, training, step, down_to, workspaces[a])

        results = self._run_shard_processes(ranges, message, {"x": x, "y": y, "sw": sample_weight}, work)
        if results is None:
            results = parallel.run_shards(work, ranges)
        outs, values, shard_grads = zip(*results)
        out = None if outs[0] is None else np.concatenate(outs, axis=0)
        if not training:
            return out, math.fsum(values), None
        grads = [{} for _ in self.layers]
        for i in range(len(self.layers)):
            for name in shard_grads[0][i]:
                g = shard_grads[0][i][name].copy()
                for other in shard_grads[1:]:
                    g += other[i][name]
                grads[i][name] = g
        return out, math.fsum(values), grads

    def __getstate__(self):
        """The model's attributes without its crew of shard processes (sockets, process ids):
        ``copy.deepcopy`` of a model gives one with private weights, which starts its own."""
        state = self.__dict__.copy()
        state.pop("_crew", None)
        return state

    def _shard_part(self, x, y, sample_weight, share, training, step, down_to, workspace):
        """One shard's forward, loss and (in training) backward: ``(outputs, loss, grads)`` with
        the loss and gradients weighed by ``share``, the shard's fraction of the batch (the
        loss is a mean over the shard)."""
        out, value, grad, contexts = self._outputs_and_loss(x, y, sample_weight, training, step=step,
                                                            workspace=workspace)
        grads = None
        if training:
            grad *= grad.dtype.type(share)
            _, grads = self.run_backward(contexts, grad, down_to=down_to, need_input_grad=False, workspace=workspace)
        return out, value * share, grads

    def _run_shard_processes(self, ranges, message, inputs, own):
        """Run a sharded batch with the model's crew of shard processes (``core.shardprocs``):
        ``own(rows)`` runs shard 0 here, the workers the others. ``None`` when the shards
        run on threads instead (processes turned off or not available here, or a target
        larger than the workers' slots)."""
        if not shardprocs.wanted() or self.__dict__.get("_crew_refused"):
            return None
        shards, rows = len(ranges), max(b - a for a, b in ranges)
        key = shardprocs.Crew.key(self)
        with parallel.pass_lock():
            crew = self.__dict__.get("_crew")
            if crew is not None and not crew.mine():
                crew = self._crew = None  # inherited through a fork: the workers are the parent's
            elif crew is not None and (crew.closed or crew.key != key or not crew.fits(shards, rows)):
                if not crew.closed and crew.key == key:  # a larger batch: room for both
                    shards, rows = max(shards, len(crew.workers) + 1), max(rows, crew.rows)
                crew.close()
                crew = self._crew = None
            if crew is None:
                try:
                    crew = self._crew = shardprocs.Crew.start(self, key, shards, rows, shardprocs.row_bytes(self))
                except OSError as exc:  # no fork here (a process limit, no memory to map)
                    self._crew_refused = True
                    warnings.warn(f"could not start the shard processes ({exc}); this model's shards run on "
                                  "threads", RuntimeWarning, stacklevel=4)
                    return None
            try:
                return crew.run(self, message, ranges, inputs, own)
            except shardprocs.SlotTooSmall:
                return None

    def _metric_values(self, y, out):
        return {name: fn(y, out) for name, fn in self._metrics}

    # ------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, batch_transform=None):
        """Train for ``epochs`` passes over the data; returns a ``History``.

        ``x`` is an array (with targets ``y``) or a data source with Keras'
        ``PyDataset`` habits (``len``, ``source[i] -> (x, y)`` or ``(x, y,
        sample_weight)``, optional ``on_epoch_end``; see ``core.data``), read
        batch by batch with background prefetching; ``steps_per_epoch`` then
        sets how many batches make an epoch. As in Keras: ``validation_split``
        holds out the *last* fraction of the samples (before shuffling; arrays
        only); ``validation_data`` (arrays or a source) overrides it;
        ``class_weight`` maps a class index to a loss weight; ``initial_epoch``
        resumes counting epochs (training resumed from a saved model).
        ``verbose=1`` (or "auto") shows a tqdm progress bar per epoch, 2 one
        line per epoch, 0 nothing. ``batch_transform(x_batch, rng)``, if given,
        transforms each training batch (data augmentation).
        """
        self._require_compiled("fit")
        parallel.apply_environment()
        batches, validation = self._fit_data(x, y, batch_size, validation_split, validation_data, shuffle,
                                             class_weight, sample_weight, steps_per_epoch)
        check_int(epochs, "fit: epochs", minimum=0)
        check_int(initial_epoch, "fit: initial_epoch", minimum=0)
        verbose = _check_verbose(verbose, "fit")
        if callbacks is not None and (not isinstance(callbacks, (list, tuple))
                                      or not all(isinstance(cb, callbacks_module.Callback) for cb in callbacks)):
            raise InputError(f"fit: callbacks must be a list of core.callbacks.Callback objects, got {callbacks!r}")
        if batch_transform is not None and not callable(batch_transform):
            raise InputError(f"fit: batch_transform must be a function (x_batch, rng) -> x_batch, got {batch_transform!r}")
        history = callbacks_module.History()
        cbs = [history] + list(callbacks or [])
        for cb in cbs:
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            logs = self._fit_epoch(batches, epoch, epochs, cbs, verbose, batch_transform, validation)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        self.history = history
        return history

    def _fit_data(self, x, y, batch_size, validation_split, validation_data, shuffle, class_weight, sample_weight,
                  steps_per_epoch):
        """Check fit's data arguments: ``(training batches, validation data or None)``."""
        if steps_per_epoch is not None:
            steps_per_epoch = check_int(steps_per_epoch, "fit: steps_per_epoch")
        if is_source(x):
            for name, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size)):
                if value is not None:
                    raise InputError(f"fit: {name} must be None when x is a data source (its batches carry them)")
            if validation_split:
                raise InputError("fit: validation_split needs arrays; with a data source pass validation_data")
            batches = SourceBatches(x, steps_per_epoch, self._source_batch_checker("fit", class_weight), "fit")
        else:
            x = self._check_x(x, "fit")
            y = self._check_y(y, len(x), "fit")
            batch_size = self._check_batch_size(batch_size)
            sw = self._check_sample_weight(sample_weight, len(x), "fit")
            if class_weight:
                sw = (sw if sw is not None else np.ones(len(x))) * self._class_weights(y, class_weight)
            if validation_data is None and validation_split:
                if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                        or not 0 < validation_split < 1:
                    raise InputError(f"fit: validation_split must be in (0, 1), got {validation_split!r}")
                cut = int(len(x) * (1 - validation_split))
                if cut < 1 or cut >= len(x):
                    raise InputError(f"fit: validation_split={validation_split} leaves no training or no validation "
                                     f"samples out of {len(x)}")
                validation_data = (x[cut:], y[cut:])
                x, y = x[:cut], y[:cut]
                sw = None if sw is None else sw[:cut]
            batches = ArrayBatches(x, y, sw, batch_size, shuffle)
            if steps_per_epoch is not None:
                raise InputError("fit: steps_per_epoch is for data sources; with arrays an epoch is one pass "
                                 "(choose batch_size instead)")
        validation = None
        if validation_data is not None:
            validation = self._validation_batches(validation_data, batch_size)
        return batches, validation

    def _validation_batches(self, data, batch_size):
        if is_source(data):
            return SourceBatches(data, None, self._source_batch_checker("fit (validation_data)"),
                                 "fit (validation_data)")
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise InputError("fit: validation_data must be (x_val, y_val), (x_val, y_val, sample_weight) or a data source")
        xv = self._check_x(data[0], "fit (validation_data)")
        yv = self._check_y(data[1], len(xv), "fit (validation_data)")
        swv = self._check_sample_weight(data[2] if len(data) == 3 else None, len(xv), "fit (validation_data)")
        return ArrayBatches(xv, yv, swv, self._check_batch_size(batch_size), False)

    def _source_batch_checker(self, what, class_weight=None):
        def check(item, b):
            xb, yb, swb = unpack_batch(item, b, what)
            where = f"{what} (batch {b} of the data source)"
            xb = self._check_x(xb, where)
            yb = self._check_y(yb, len(xb), where)
            swb = self._check_sample_weight(swb, len(xb), where)
            if class_weight:
                swb = (swb if swb is not None else np.ones(len(xb))) * self._class_weights(yb, class_weight)
            return xb, yb, swb
        return check

    def _fit_epoch(self, batches, epoch, epochs, cbs, verbose, batch_transform, validation):
        """One pass over the training batches, then validation: the epoch's logs."""
        # one generator per epoch, so a run resumed at initial_epoch=k shuffles as an uninterrupted one
        rng = np.random.default_rng([self._seed, 2**20, epoch])
        totals, seen, logs = {}, 0, {}
        bar = tqdm(total=batches.steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", disable=verbose != 1,
                   leave=True, file=sys.stderr, dynamic_ncols=True)
        with bar:
            for b, (xb, yb, swb) in enumerate(batches.epoch(rng)):
                if batch_transform is not None:
                    xb = np.asarray(batch_transform(xb, rng), dtype=self.dtype)
                value, out = self._train_step(xb, yb, swb, f"at epoch {epoch + 1}, batch {b + 1} of {batches.steps}")
                k = len(xb)
                seen += k
                for name, v in {"loss": value, **self._metric_values(yb, out)}.items():
                    totals[name] = totals.get(name, 0.0) + v * k
                logs = {name: v / seen for name, v in totals.items()}
                if verbose == 1:
                    bar.set_postfix({k2: f"{v:.4f}" for k2, v in logs.items()}, refresh=False)
                    bar.update(1)
                for cb in cbs:
                    cb.on_train_batch_end(b, logs)
            batches.end_epoch()
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_batches(validation).items()})
                if verbose == 1:
                    bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=True)
        logs["learning_rate"] = self.optimizer.learning_rate
        return logs

    def _check_sample_weight(self, sample_weight, n, what):
        if sample_weight is None:
            return None
        try:
            sw = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{what}: sample_weight must be numbers, got {sample_weight!r:.80}") from None
        if len(sw) != n:
            raise ShapeError(f"{what}: sample_weight has {len(sw)} entries for {n} samples")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise InputError(f"{what}: sample_weight must be finite and non-negative")
        return sw

    def _class_weights(self, y, class_weight):
        n_classes = self.layers[-1].output_shape[-1]
        if not isinstance(class_weight, dict):
            raise InputError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
        labels = y if y.ndim == 1 else y.argmax(axis=-1)
        w = np.ones(len(labels))
        for cls, weight in class_weight.items():
            if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < max(n_classes, 2):
                raise InputError(f"class_weight keys must be class indices in [0, {max(n_classes, 2)}), got {cls!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) \
                    or not np.isfinite(weight) or weight < 0:
                raise InputError(f"class_weight[{cls!r}] must be a finite non-negative number, got {weight!r}")
            w[labels == int(cls)] = float(weight)
        return w

    # --------------------------------------------------------------- batches
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics), as Keras."""
        self._require_compiled("train_on_batch")
        parallel.apply_environment()
        x = self._check_x(x, "train_on_batch")
        y = self._check_y(y, len(x), "train_on_batch")
        sw = self._check_sample_weight(sample_weight, len(x), "train_on_batch")
        if class_weight:
            sw = (sw if sw is not None else np.ones(len(x))) * self._class_weights(y, class_weight)
        value, out = self._train_step(x, y, sw, f"in train_on_batch (optimizer step {self.optimizer.iterations + 1})")
        return self._format_result({"loss": value, **self._metric_values(y, out)}, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=len(x), sample_weight=sample_weight, return_dict=return_dict)

    def predict_on_batch(self, x):
        parallel.apply_environment()
        return self._predict_batch(self._check_x(x, "predict_on_batch"))

    def _format_result(self, result, return_dict):
        if return_dict:
            return result
        return result["loss"] if len(result) == 1 else list(result.values())

    # -------------------------------------------------------- evaluate / predict
    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, return_dict=False):
        """Loss (plus regularization) and metrics over ``(x, y)`` (or a data source), in batches."""
        self._require_compiled("evaluate")
        parallel.apply_environment()
        verbose = _check_verbose(verbose, "evaluate")
        if is_source(x):
            if y is not None or sample_weight is not None:
                raise InputError("evaluate: y and sample_weight must be None when x is a data source")
            batches = SourceBatches(x, None, self._source_batch_checker("evaluate"), "evaluate")
        else:
            x = self._check_x(x, "evaluate")
            y = self._check_y(y, len(x), "evaluate")
            sw = self._check_sample_weight(sample_weight, len(x), "evaluate")
            batches = ArrayBatches(x, y, sw, self._check_batch_size(batch_size), False)
        return self._format_result(self._evaluate_batches(batches, verbose), return_dict)

    def _evaluate_batches(self, batches, verbose=0):
        reg = self._regularization_loss()
        totals, count = {}, 0
        for xb, yb, swb in tqdm(batches.epoch(), total=batches.steps, disable=verbose != 1, desc="evaluate",
                                unit="batch"):
            self.workspace.reclaim()
            ranges = self._shard_ranges(len(xb))
            if ranges is None:
                with self._threads_for_whole(len(xb)):
                    out, value, _, _ = self._outputs_and_loss(xb, yb, swb, training=False)
            else:
                out, value, _ = self._sharded_pass(xb, yb, swb, ranges, False)
            for name, v in {"loss": value + reg, **self._metric_values(yb, out)}.items():
                totals[name] = totals.get(name, 0.0) + v * len(xb)
            count += len(xb)
        return {k: v / count for k, v in totals.items()}

    def reset_inference(self):
        """Drop the inference plan (the folded batch-norm weights); the next ``predict`` rebuilds it.
        Needed only after editing weight arrays in place by hand (see ``core.inference``)."""
        self._weights_version += 1
        self._inference = None

    def _inference_plan(self):
        plan = self._inference
        if plan is None or not plan.is_current(self._weights_version):
            plan = self._inference = InferencePlan(self.layers, self._weights_version)
        return plan

    def _predict_batch(self, xb):
        """Inference-mode outputs of one checked batch, as a new array: the fused inference
        path (``core.inference``), no contexts kept."""
        return np.array(self._infer(xb), copy=True)

    def _infer(self, xb):
        """The inference output of one checked batch, in the workspace (valid until the next reclaim)."""
        ws = self.workspace
        ws.reclaim()
        plan = self._inference_plan()
        ranges = self._shard_ranges(len(xb))
        if ranges is None:
            with self._threads_for_whole(len(xb)):
                return plan(xb, ws)
        # one shard of the batch per thread or shard process, each with its own workspace (see _sharded_pass)
        out = ws.take("predict.out", (len(xb),) + tuple(self.layers[-1].output_shape), xb.dtype)
        workspaces = self._shard_workspaces_for(ranges)

        def work(rows):
            a, b = rows
            out[a:b] = plan(xb[a:b], workspaces[a])
            return None, None, None

        results = self._run_shard_processes(ranges, {"op": "infer"}, {"x": xb}, work)
        if results is None:
            parallel.run_shards(work, ranges)
        else:
            for (a, b), (part, _, _) in zip(ranges[1:], results[1:]):
                out[a:b] = part
        return out

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for ``x`` ``(N, *input_shape)`` (or each batch of a data source
        whose items are ``x`` or ``(x, ...)``), in batches, inference mode."""
        verbose = _check_verbose(verbose, "predict")
        parallel.apply_environment()
        if is_source(x):
            def read(item, b):
                xb = item[0] if isinstance(item, (tuple, list)) else item
                return self._check_x(xb, f"predict (batch {b} of the data source)")
            source = SourceBatches(x, None, read, "predict")
            batches = source.epoch()
            if verbose == 1:
                batches = tqdm(batches, total=source.steps, desc="predict", unit="batch")
            return np.concatenate([self._predict_batch(xb) for xb in batches], axis=0)
        x = self._check_x(x, "predict")
        bs = self._check_batch_size(batch_size)
        # every batch's output goes straight into the result (no list of copies to concatenate)
        out = None
        starts = range(0, len(x), bs)
        if verbose == 1:
            starts = tqdm(starts, desc="predict", unit="batch")
        for s in starts:
            y = self._infer(x[s:s + bs])
            if out is None:
                out = np.empty((len(x),) + y.shape[1:], y.dtype)
            out[s:s + bs] = y
        return out

    def __call__(self, x, training=False):
        """The outputs for one batch (in training mode with ``training=True``: dropout on,
        batch statistics), as a new array."""
        if isinstance(x, Input):
            raise ConfigError("a Sequential model was called on an Input: the functional API is not supported; "
                              "start the Sequential with the Input instead")
        x = self._check_x(x, "call")
        if not training:
            return self._predict_batch(x)
        self.workspace.reclaim()
        outputs, _ = self.run_forward(x, training=True, context=False)
        out = np.array(outputs[-1], copy=True)
        self.workspace.reclaim()
        return out

    # ---------------------------------------------------------------- weights
    def _require_built(self, what):
        if not self.built:
            raise NotFittedError(f"{what}: the model is not built yet; start it with Input(shape=...) or call build()")

    def get_weights(self):
        """All weights, layer by layer, each layer's in Keras order."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        weights = list(weights)
        counts = [len(layer.weight_names()) for layer in self.layers]
        if len(weights) != sum(counts):
            per = ", ".join(f"{lay.name}: {c}" for lay, c in zip(self.layers, counts) if c)
            raise InputError(f"set_weights: the model has {sum(counts)} weight arrays ({per}), got {len(weights)}")
        pos = 0
        for layer, c in zip(self.layers, counts):
            layer.set_weights(weights[pos:pos + c])
            pos += c
        self.reset_inference()

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=None):
        """Print one row per layer (name, type, output shape, parameters) and the totals."""
        self._require_built("summary")
        print_fn = print_fn or print
        rows = [(f"{lay.name} ({type(lay).__name__})", str((None,) + tuple(lay.output_shape)), f"{lay.count_params():,}")
                for lay in self.layers]
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "-" * (sum(w) + 6)
        print_fn(f'Model: "{self.name}"')
        if self._input_name:
            print_fn(f"Input {self._input_name!r}: {self.input_shape}")
        print_fn(line)
        print_fn(f"{'Layer (type)':<{w[0]}}   {'Output Shape':<{w[1]}}   {'Param #':>{w[2]}}")
        print_fn("=" * len(line))
        for r in rows:
            print_fn(f"{r[0]:<{w[0]}}   {r[1]:<{w[1]}}   {r[2]:>{w[2]}}")
        print_fn("=" * len(line))
        total = self.count_params()
        frozen = sum(layer.params[n].size for layer in self.layers for n in layer.params
                     if n not in layer.trainable_names())
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total - frozen:,}")
        print_fn(f"Non-trainable params: {frozen:,}")

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {"name": self.name, "seed": self._seed,
                "input_shape": list(self._input_shape) if self._input_shape else None,
                "layers": [serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, cfg):
        layers = []
        for spec in cfg["layers"]:
            klass = LAYER_CLASSES.get(spec.get("class_name"))
            if klass is None:
                raise ConfigError(f"unknown layer {spec.get('class_name')!r}; valid names: {sorted(LAYER_CLASSES)}")
            layers.append(klass.from_config(dict(spec.get("config", {}))))
        model = cls(layers, name=cfg.get("name"), seed=cfg.get("seed"))
        if cfg.get("input_shape"):
            model._input_shape = tuple(cfg["input_shape"])
            model.build()
        return model

    def compile_config(self):
        if not self.compiled:
            return None
        cfg = {"optimizer": serialize(self.optimizer), "loss": serialize(self.loss),
               "metrics": [name for name, _ in self._metrics]}
        if self._loss_weight != 1.0:
            cfg["loss_weights"] = self._loss_weight
        return cfg

    def save(self, filepath, include_optimizer=True):
        """Write the model (architecture, weights, optimizer state) to one ``.npz`` file, atomically."""
        save_model(self, filepath, include_optimizer=include_optimizer)


def _work_per_sample(layers):
    """A rough count of the floating-point operations of one sample's forward pass: two per
    multiply-add of every layer with a kernel, one per output element of the others."""
    total = 0
    for layer in layers:
        branches = getattr(layer, "branches", None)
        if branches is not None:
            total += sum(_work_per_sample(stack) for stack in branches)
            continue
        kernel = layer.params.get("kernel") if isinstance(layer.params, dict) else None
        out = tuple(layer.output_shape or ())
        if kernel is not None and out:
            total += 2 * kernel.size * math.prod(out[:-1])
        else:
            total += math.prod(out)
    return total


def _check_verbose(verbose, what):
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise InputError(f"{what}: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return 1 if verbose == "auto" else int(verbose)


def _single_loss_weight(loss_weights):
    """The one loss weight of a single-output model from compile's ``loss_weights``."""
    if loss_weights is None:
        return 1.0
    value = loss_weights
    if isinstance(loss_weights, (list, tuple)):
        if len(loss_weights) != 1:
            raise ConfigError(f"compile: loss_weights must have one entry (the model has one output), got {loss_weights!r}")
        value = loss_weights[0]
    elif isinstance(loss_weights, dict):
        if len(loss_weights) != 1:
            raise ConfigError(f"compile: loss_weights must have one entry (the model has one output), got {loss_weights!r}")
        value = next(iter(loss_weights.values()))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value <= 0:
        raise ConfigError(f"compile: a loss weight must be a positive number, got {value!r}")
    return float(value)
