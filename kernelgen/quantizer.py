"""Stage 5: the user's API. `quantizer(spec, head_dim)` -> a Quantizer that validates tensors and
launches the generated kernels (or, on a CPU without the Triton interpreter, the PyTorch path)."""

from __future__ import annotations

import torch

from . import registry, torch_path


def _device(device) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


_DTYPE_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}


def _names(dtypes) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


class Quantizer:
    """Compress and decompress vectors of one head dim with one spec's generated kernels.

    Attributes: `spec`, `bits`, `head_dim`, `packed_dim` (bytes a row), `device`,
    `rotation` (D x D fp32), `centroids` (2^bits fp32), `boundaries` (2^bits - 1 fp32),
    `dtypes`, `precision` (dtype -> operand precision of the kernels' rotation products).
    """

    def __init__(self, variant: registry.LoadedVariant, device: torch.device):
        self._variant = variant
        self.spec = variant.spec_name
        self.layout = variant.layout
        self.bits = variant.layout.bits
        self.head_dim = variant.layout.head_dim
        self.packed_dim = variant.layout.packed_dim
        self.device = device
        self.dtypes = variant.dtypes
        # operand precision of the rotation products for each dtype: 'fp16', 'tf32x3', 'tf32' or 'ieee'
        self.precision = {d: variant.precision(_DTYPE_NAMES[d]) for d in self.dtypes}
        self.rotation = variant.rotation.to(device)
        self.centroids = variant.centroids.to(device)
        self.boundaries = variant.boundaries.to(device)
        # the rotation and the codebook as the kernels take them, for each data dtype (fp16 where its
        # products are fp16); decompress_rotated gathers fp32 centroids (it returns centroid * norm exactly)
        # (compress: the slots, or the padded rotation transposed where the module says so; decompress:
        # the padded rotation)
        compress_rotations = {p: variant.compress_rotation(p).to(device) for p in set(self.precision.values())}
        rotations = {p: variant.padded_rotation(p).to(device) for p in set(self.precision.values())}
        tables = {p: variant.centroid_table(p).to(device) for p in set(self.precision.values())}
        self._compress_rotation = {d: compress_rotations[p] for d, p in self.precision.items()}
        self._padded_rotation = {d: rotations[p] for d, p in self.precision.items()}
        self._centroid_table = {d: tables[p] for d, p in self.precision.items()}
        self._rotated_table = variant.centroids.to(device)
        # what each kernel takes between its inputs and its outputs, for data of each dtype
        self._constants = {(op, d): consts for d in self.dtypes for op, consts in (
            ("compress", (self._compress_rotation[d],)),
            ("decompress", (self._padded_rotation[d], self._centroid_table[d])),
            ("decompress_rotated", (self._rotated_table,)))}
        self._kernels = {op: registry.BoundKernel(variant, op) for op in registry.OPS}
        self._interpreted = self._kernels["compress"].interpreted
        self._use_kernels = device.type == "cuda" or self._interpreted

    def __repr__(self) -> str:
        return (f"Quantizer(spec={self.spec!r}, bits={self.bits}, head_dim={self.head_dim}, "
                f"device={str(self.device)!r}, backend={'triton' if self._use_kernels else 'torch'})")

    # -- checks ---------------------------------------------------------------------------------
    def _check_tensor(self, name: str, t, dtypes, shape_text: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape {shape_text}, got {type(t).__name__}")
        if t.dtype not in dtypes:
            raise TypeError(f"{name} must have dtype {_names(dtypes)}, got {_names([t.dtype])}")
        if t.device != self.device:
            raise ValueError(f"{name} is on {t.device}, but this quantizer is on {self.device}: all tensors "
                             f"must be on one device (make a quantizer with device={str(t.device)!r})")

    def _check_out(self, name: str, t, shape, dtype) -> None:
        if isinstance(t, torch.Tensor) and t.dtype == dtype and t.shape == shape and t.is_contiguous() \
                and t.device == self.device:
            return  # the common case, checked cheaply: this runs on every decode step
        self._check_tensor(name, t, (dtype,), str(tuple(shape)))
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")

    def _out_dtype(self, dtype) -> torch.dtype:
        if not isinstance(dtype, torch.dtype) or dtype not in self.dtypes:
            raise TypeError(f"dtype must be one of torch.{', torch.'.join(_names(self.dtypes).split(', '))}, "
                            f"got {dtype!r}")
        return dtype

    def _check_decompress_args(self, packed, norms, dtype, rotated) -> None:
        D, P = self.head_dim, self.packed_dim
        self._out_dtype(dtype)
        self._check_tensor("packed", packed, (torch.uint8,), f"(..., {P})")
        if packed.dim() == 0 or packed.shape[-1] != P:
            raise ValueError(f"packed must have shape (..., {P}) for {self.spec} at head dim {D} "
                             f"({D}*{self.bits}/8 bytes a row), got {tuple(packed.shape)}")
        lead = tuple(packed.shape[:-1])
        self._check_tensor("norms", norms, (torch.float32,), f"{(*lead, 1)}")
        if tuple(norms.shape) != (*lead, 1):
            raise ValueError(f"norms must have shape {(*lead, 1)} to match packed {tuple(packed.shape)}, "
                             f"got {tuple(norms.shape)}")
        if not isinstance(rotated, bool):
            raise TypeError(f"rotated must be True or False, got {rotated!r}")

    def _launch(self, op: str, n_rows: int, dtype: str, *args) -> None:
        if self.device.type == "cuda" and torch.cuda.current_device() != self.device.index:
            with torch.cuda.device(self.device):  # make the quantizer's GPU current for the launch
                self._kernels[op].launch(n_rows, dtype, self.device, *args)
        else:
            self._kernels[op].launch(n_rows, dtype, self.device, *args)

    # -- ops ------------------------------------------------------------------------------------
    def compress(self, x: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x (..., D) float -> (packed (..., D*bits/8) uint8, norms (..., 1) fp32)."""
        D, P = self.head_dim, self.packed_dim
        if not (type(x) is torch.Tensor and x.dtype in self.dtypes and x.dim() and x.shape[-1] == D
                and x.device == self.device):  # one cheap test first: this runs on every decode step
            self._check_tensor("x", x, self.dtypes, f"(..., {D})")
            if x.dim() == 0 or x.shape[-1] != D:
                raise ValueError(f"x must have shape (..., {D}) for {self.spec} at head dim {D}, "
                                 f"got {tuple(x.shape)}")
        lead = x.shape[:-1]
        if out is None:
            packed = torch.empty(*lead, P, dtype=torch.uint8, device=self.device)
            norms = torch.empty(*lead, 1, dtype=torch.float32, device=self.device)
        else:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("out must be a (packed, norms) pair of tensors")
            packed, norms = out
            self._check_out("out[0] (packed)", packed, (*lead, P), torch.uint8)
            self._check_out("out[1] (norms)", norms, (*lead, 1), torch.float32)
        # The kernels read dense, 16-byte aligned rows: a strided or offset view is copied first, so it
        # runs the very code (and rounding) its contiguous copy runs and gives the same bytes.
        rows = x if x.dim() == 2 else x.reshape(-1, D)
        if not rows.is_contiguous() or rows.data_ptr() % 16:
            rows = rows.clone(memory_format=torch.contiguous_format)
        n = rows.shape[0]
        if n == 0:
            return packed, norms
        if self._use_kernels:
            # The kernels may write packed rows as 4-byte words (tq3 at head dims that are multiples of 32):
            # an `out` view that starts off a 4-byte boundary gets them through an aligned buffer.
            target = packed if packed.data_ptr() % 4 == 0 else torch.empty(packed.shape, dtype=packed.dtype,
                                                                            device=packed.device)
            args = self._kernel_args("compress", rows.dtype, (rows,), (target, norms))
            self._launch("compress", n, _DTYPE_NAMES[rows.dtype], *args)
            if target is not packed:
                packed.copy_(target)
        else:
            p, nr = torch_path.compress_rows(rows, self.rotation, self.boundaries, self.layout)
            packed.view(n, P).copy_(p)
            norms.view(n).copy_(nr)
        return packed, norms

    def decompress(self, packed: torch.Tensor, norms: torch.Tensor, *, dtype: torch.dtype = torch.float16,
                   rotated: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
        """(packed (..., D*bits/8) uint8, norms (..., 1) fp32) -> (..., D) in `dtype`.

        rotated=False (default): the original space (inverse rotation applied in the kernel).
        rotated=True: the rotated space, centroid * norm, as turboquant-vllm's decompress.
        """
        D, P = self.head_dim, self.packed_dim
        lead = packed.shape[:-1] if type(packed) is torch.Tensor else None
        if not (lead is not None and packed.dtype == torch.uint8 and packed.shape[-1:] == (P,)
                and type(norms) is torch.Tensor and norms.dtype == torch.float32 and norms.shape == (*lead, 1)
                and packed.device == self.device and norms.device == self.device
                and dtype in self.dtypes and (rotated is True or rotated is False)):
            self._check_decompress_args(packed, norms, dtype, rotated)  # raises with the reason
            lead = packed.shape[:-1]
        if out is None:
            out = torch.empty(*lead, D, dtype=dtype, device=self.device)
        else:
            self._check_out("out", out, (*lead, D), dtype)
        rows = packed if packed.dim() == 2 and packed.is_contiguous() else packed.reshape(-1, P).contiguous()
        row_norms = norms if norms.is_contiguous() else norms.contiguous()  # kernels index it as (n,)
        n = rows.shape[0]
        if n == 0:
            return out
        if self._use_kernels:
            op = "decompress_rotated" if rotated else "decompress"
            # Triton 3.6's interpreter truncates fp32 -> bf16 instead of rounding to nearest even as the
            # GPU does; under it, bf16 output goes through an fp32 buffer and torch's (correct) cast.
            via_fp32 = dtype == torch.bfloat16 and self._interpreted
            target = torch.empty(out.shape, dtype=torch.float32, device=self.device) if via_fp32 else out
            self._launch(op, n, _DTYPE_NAMES[dtype], *self._kernel_args(op, dtype, (rows, row_norms), (target,)))
            if via_fp32:
                out.copy_(target)
        else:
            result = torch_path.decompress_rows(rows, row_norms.view(-1), self.rotation, self.centroids, self.layout,
                                                dtype, rotated)
            out.view(n, D).copy_(result)
        return out


    # -- ahead of time ---------------------------------------------------------------------------
    def warmup(self, max_rows: int, *, dtypes=None, ops=registry.OPS) -> int:
        """Compile and tune every row bucket up to max_rows (for each dtype and op) now, so that later
        calls never tune: after it, compress and decompress can be captured in a CUDA graph.
        Returns the number of (op, dtype, bucket) launches prepared; 0 on the PyTorch path."""
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
        unknown = set(ops) - set(registry.OPS)
        if unknown:
            raise ValueError(f"ops must be among {', '.join(registry.OPS)}, got {sorted(unknown)}")
        dtypes = tuple(dtypes) if dtypes is not None else self.dtypes
        for dtype in dtypes:
            self._out_dtype(dtype)
        if not self._use_kernels:
            return 0
        prepared = 0
        top = registry.row_bucket(max_rows)
        for dtype in dtypes:
            for bucket in (1 << i for i in range(top.bit_length())):
                for op, kernel, args in self._cases(bucket, dtype, ops):
                    kernel.launch(bucket, _DTYPE_NAMES[dtype], self.device, *args)
                    prepared += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return prepared

    def _cases(self, rows: int, dtype: torch.dtype, ops=registry.OPS):
        """(op, kernel, arguments) on fresh random inputs of `rows` rows, for warm-up and tuning."""
        x = torch.randn(rows, self.head_dim, device=self.device).to(dtype)
        packed = torch.randint(0, 256, (rows, self.packed_dim), dtype=torch.uint8, device=self.device)
        norms = torch.rand(rows, device=self.device) + 0.5
        out = torch.empty(rows, self.head_dim, dtype=dtype, device=self.device)
        io = {
            "compress": ((x,), (torch.empty_like(packed), torch.empty_like(norms))),
            "decompress": ((packed, norms), (out,)),
            "decompress_rotated": ((packed, norms), (out,)),
        }
        return [(op, self._kernels[op], self._kernel_args(op, dtype, *io[op])) for op in registry.OPS if op in ops]

    def _kernel_args(self, op: str, dtype: torch.dtype, inputs: tuple, outputs: tuple) -> tuple:
        """The tensor arguments of op's kernel in signature order: inputs, the rotation (compress: its
        slots or transposed; decompress: padded) and/or the centroid table for data of `dtype` (see the
        generated module's docstring), outputs."""
        return (*inputs, *self._constants[op, dtype], *outputs)


def quantizer(spec: str, head_dim: int, device=None) -> Quantizer:
    """The Quantizer for a generated spec at one head dim, on `device` (default: cuda if present, else cpu).

    Raises VariantNotFound (a LookupError) naming what exists when the spec or head dim is unknown.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a spec name such as 'tq4', got {type(spec).__name__}")
    if not isinstance(head_dim, int) or isinstance(head_dim, bool):
        raise TypeError(f"head_dim must be an int, got {head_dim!r}")
    return Quantizer(registry.load_variant(spec, head_dim), _device(device))
