#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/README.md) into tests/fuzz/corpus/<target>/.

The valid files come from the project's own fixture generators (tests/fixtures/make_*_fixtures.py), run into a
temporary folder (or read from an existing fixture folder with --fixtures BUILD/fixtures, which ctest fills),
keeping only the small ones; the hostile files are made here: truncation at every section boundary, huge
declared sizes, negative and overflowing shapes and offsets, recursion and memo bombs in pickles, zip entries
that point outside the archive. Deterministic apart from the legacy .pth storage keys (torch takes them from
memory addresses). Findings of the fuzzers are not written here: their inputs are committed beside the seeds
as corpus/<target>/crash-*, leak-*, ... and stay.

Usage: /usr/bin/python3 tests/fuzz/make_corpus.py [--fixtures DIR] [--out tests/fuzz/corpus]
"""
import argparse
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
MAX_SEED = 100 * 1024  # bytes; the whole corpus stays well under 2 MiB
GENERATED_PREFIX = "seed-"  # everything this script writes; other files (findings) are left alone


class Corpus:
    def __init__(self, root):
        self.root = root
        self.total = 0

    def add(self, target, name, data):
        if len(data) > MAX_SEED:
            return
        folder = os.path.join(self.root, target)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, GENERATED_PREFIX + name), "wb") as f:
            f.write(data)
        self.total += len(data)

    def add_file(self, target, name, path):
        with open(path, "rb") as f:
            self.add(target, name, f.read())


def clear(root):
    for target in os.listdir(root) if os.path.isdir(root) else []:
        folder = os.path.join(root, target)
        for name in os.listdir(folder):
            if name.startswith(GENERATED_PREFIX):
                os.remove(os.path.join(folder, name))


def fixtures(args, name, script):
    """The fixture folder `name` written by tests/fixtures/`script`."""
    if args.fixtures:
        return os.path.join(args.fixtures, name)
    out = os.path.join(args.tmp, name)
    if not os.path.isdir(out):
        subprocess.run([sys.executable, os.path.join(FIXTURES, script), out], check=True,
                       stdout=subprocess.DEVNULL)
    return out


def small_files(folder, extensions):
    for dirpath, _, names in sorted(os.walk(folder)):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            if n.endswith(extensions) and os.path.getsize(p) <= MAX_SEED:
                yield os.path.relpath(p, folder).replace(os.sep, "_"), p


def truncations(data, cuts):
    for cut in sorted(set(c for c in cuts if 0 <= c < len(data))):
        yield cut, data[:cut]


# ---- pickles and .pth -------------------------------------------------------------------------------------------


def pickle_bombs():
    """Hostile pickles for the restricted unpickler: depth, memo and size bombs, and lies about lengths."""
    proto = b"\x80\x02"
    yield "marks_bomb.pkl", proto + b"(" * 30000 + b"."
    yield "list_nesting_bomb.pkl", proto + b"]" * 20000 + b"a" * 19999 + b"."
    yield "tuple_nesting_bomb.pkl", proto + b")" + b"\x85" * 20000 + b"."
    yield "memo_bomb.pkl", proto + b"N" + b"".join(b"r" + struct.pack("<I", i) for i in range(5000)) + b"."
    yield "memo_huge_index.pkl", proto + b"Nr\xff\xff\xff\xff" + b"j\xfe\xff\xff\xff."
    yield "memo_get_missing.pkl", proto + b"h\x07."
    yield "binunicode_huge.pkl", proto + b"X\xff\xff\xff\x7fabc."
    yield "binbytes8_huge.pkl", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"x."
    yield "long4_huge.pkl", proto + b"\x8b\xff\xff\xff\x7f\x01."
    yield "long4_negative.pkl", proto + b"\x8b\xff\xff\xff\xff\x01."
    yield "frame_huge.pkl", b"\x80\x04\x95" + struct.pack("<Q", 1 << 63) + b"N."
    yield "stack_underflow.pkl", proto + b"s."
    yield "setitems_odd.pkl", proto + b"}(N."
    yield "pop_mark_empty.pkl", proto + b"1."
    yield "stop_empty.pkl", proto + b"."
    yield "global_os.pkl", b"cos\nsystem\n(S'true'\ntR."
    yield "global_no_newline.pkl", b"c" + b"a" * 300
    yield "reduce_wrong_args.pkl", proto + b"ctorch._utils\n_rebuild_tensor_v2\nN\x85R."
    yield "protocol_6.pkl", b"\x80\x06N."
    yield "unknown_opcode.pkl", proto + b"\xff."
    # A persistent id for a storage with an impossible size, and a tensor whose shape and stride overflow.
    big = (1 << 63) - 1
    yield "storage_numel_overflow.pkl", pickle.dumps(
        {"w": ("storage", "FloatStorage", "0", "cpu", big)}, protocol=2)
    yield "shape_overflow.pkl", pickle.dumps({"w": ((big, big), (-1, 2))}, protocol=2)


class FakeStorage:
    """Pickles as torch's persistent id of a storage, without torch (for shapes torch would not write)."""

    def __init__(self, key, numel, kind="FloatStorage"):
        self.key, self.numel, self.kind = key, numel, kind


class Global:
    def __init__(self, module, name):
        self.module, self.name = module, name


class TensorPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", Global("torch", obj.kind), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, Global):
            return NotImplemented
        return NotImplemented


def fake_pickle(entries):
    """{name: (storage, offset, shape, stride)} as torch's _rebuild_tensor_v2 calls, written opcode by opcode so
    that any numbers (negative, overflowing) can be declared."""
    out = io.BytesIO()
    out.write(b"\x80\x02ccollections\nOrderedDict\nq\x00)R(")
    for name, (key, numel, offset, shape, stride) in entries.items():
        out.write(b"X" + struct.pack("<I", len(name)) + name.encode())
        out.write(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.write(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n")
        out.write(b"X" + struct.pack("<I", len(key)) + key.encode() + b"X\x03\x00\x00\x00cpu")
        out.write(pickle_int(numel) + b"tQ")
        out.write(pickle_int(offset))
        out.write(b"(" + b"".join(pickle_int(s) for s in shape) + b"t")
        out.write(b"(" + b"".join(pickle_int(s) for s in stride) + b"t")
        out.write(b"\x89ccollections\nOrderedDict\n)RtR")
    out.write(b"u.")
    return out.getvalue()


def pickle_int(n):
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def zip_pth(pkl, records, names=None):
    """A torch.save zip archive holding archive/data.pkl and archive/data/<key> records."""
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr((names or {}).get("data.pkl", "archive/data.pkl"), pkl)
        for key, data in records.items():
            z.writestr((names or {}).get(key, "archive/data/" + key), data)
        z.writestr("archive/version", b"3\n")
    return f.getvalue()


def zip_boundaries(data):
    """Offsets of every local header, its data, the central directory entries and the end record."""
    cuts = [0, 4, 30, len(data) - 22, len(data) - 1]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            cuts += [info.header_offset, info.header_offset + 30,
                     info.header_offset + 30 + len(info.filename.encode()),
                     info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size]
    eocd = data.rfind(b"PK\x05\x06")
    if eocd >= 0:
        cd = struct.unpack("<I", data[eocd + 16:eocd + 20])[0]
        cuts += [cd, cd + 46, eocd, eocd + 22]
    return cuts


def patch_zip(data, name, **fields):
    """Rewrites fields of entry `name`'s central directory record: size, offset (absolute values)."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        n_len, e_len, c_len = struct.unpack("<HHH", out[pos + 28:pos + 34])
        if out[pos + 46:pos + 46 + n_len] == name.encode():
            if "size" in fields:
                out[pos + 20:pos + 28] = struct.pack("<II", fields["size"], fields["size"])
            if "offset" in fields:
                out[pos + 42:pos + 46] = struct.pack("<I", fields["offset"])
        pos = out.find(b"PK\x01\x02", pos + 46 + n_len + e_len + c_len)
    return bytes(out)


def pth_seeds(c, args):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2))
    state = net.state_dict()
    for stem, obj in [("tiny", state), ("wrapped", {"state_dict": state, "epoch": 3}),
                      ("tensor_view", {"w": torch.arange(12.0).reshape(3, 4)[1:, ::2]}),
                      ("half_int", {"h": torch.ones(3, dtype=torch.float16), "i": torch.arange(4),
                                    "b": torch.tensor([True, False])})]:
        for legacy in (False, True):
            f = io.BytesIO()
            torch.save(obj, f, _use_new_zipfile_serialization=not legacy)
            data = f.getvalue()
            kind = "legacy" if legacy else "zip"
            c.add("pth", f"{stem}_{kind}.pth", data)
            if legacy:
                # The legacy format is pickles (magic, protocol, sys info, the state dict, storage keys) then
                # raw storages: cut at every pickle's end and inside the storage data.
                ends, pos = [], 0
                for _ in range(5):
                    try:
                        for op, arg, p in pickletools.genops(data[pos:]):
                            if op.name == "STOP":
                                ends.append(pos + p + 1)
                                pos = pos + p + 1
                                break
                    except Exception:
                        break
                for cut, part in truncations(data, ends + [e + 8 for e in ends] + [len(data) - 4]):
                    c.add("pth", f"{stem}_legacy_cut{cut}.pth", part)
                c.add("pickle", f"{stem}_legacy_first.pkl", data)
            else:
                if stem == "tiny":
                    for cut, part in truncations(data, zip_boundaries(data)):
                        c.add("pth", f"{stem}_zip_cut{cut}.pth", part)
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    for n in z.namelist():
                        if n.endswith("data.pkl"):
                            pkl = z.read(n)
                            c.add("pickle", f"{stem}_data.pkl", pkl)
                            if stem == "tiny":
                                cuts = [p for _, _, p in pickletools.genops(pkl)]
                                for cut, part in truncations(pkl, cuts[::7]):
                                    c.add("pickle", f"tiny_cut{cut}.pkl", part)

    # Zip entries that point outside the archive, lie about their size, or escape the archive's folder.
    w = np.arange(6, dtype="<f4").tobytes()
    pkl = fake_pickle({"w": ("0", 6, 0, (2, 3), (3, 1))})
    ok = zip_pth(pkl, {"0": w})
    c.add("pth", "crafted_ok.pth", ok)
    c.add("pickle", "crafted_ok.pkl", pkl)
    c.add("pth", "entry_offset_past_end.pth", patch_zip(ok, "archive/data/0", offset=len(ok) + 1000))
    c.add("pth", "entry_offset_huge.pth", patch_zip(ok, "archive/data/0", offset=0xFFFFFFF0))
    c.add("pth", "entry_size_huge.pth", patch_zip(ok, "archive/data/0", size=0xFFFFFFF0))
    c.add("pth", "pickle_size_huge.pth", patch_zip(ok, "archive/data.pkl", size=0x7FFFFFFF))
    c.add("pth", "entry_dotdot.pth", zip_pth(pkl, {"0": w}, {"0": "archive/data/../../0"}))
    c.add("pth", "entry_absolute.pth", zip_pth(pkl, {"0": w}, {"0": "/archive/data/0"}))
    for name, entry in [
        ("negative_shape", ("0", 6, 0, (-2, -3), (3, 1))),
        ("negative_stride", ("0", 6, 5, (2, 3), (-3, -1))),
        ("negative_offset", ("0", 6, -4, (2, 3), (3, 1))),
        ("overflow_shape", ("0", 6, 0, (1 << 40, 1 << 40), (1, 1))),
        ("overflow_stride", ("0", 6, 0, (2, 3), ((1 << 62), 1))),
        ("overflow_offset", ("0", 6, (1 << 63) - 1, (2, 3), (3, 1))),
        ("huge_numel", ("0", (1 << 62), 0, (2, 3), (3, 1))),
        ("negative_numel", ("0", -6, 0, (2, 3), (3, 1))),
        ("shape_stride_mismatch", ("0", 6, 0, (2, 3), (1,))),
        ("zero_stride_huge", ("0", 6, 0, (1 << 30, 1 << 30), (0, 0))),
    ]:
        p = fake_pickle({"w": entry})
        c.add("pth", name + ".pth", zip_pth(p, {"0": w}))
        c.add("pickle", name + ".pkl", p)
    for name, data in pickle_bombs():
        c.add("pickle", name, data)
        if len(data) < 4096:
            c.add("pth", name.replace(".pkl", "_zip.pth"), zip_pth(data, {}))
    # The fixture script's small files: its hostile and damaged cases among them.
    for name, p in small_files(fixtures(args, "pth", "make_pth_fixtures.py"), (".pth", ".pkl")):
        c.add("pth" if name.endswith(".pth") else "pickle", "fixture_" + name, open(p, "rb").read())


# ---- safetensors ------------------------------------------------------------------------------------------------


def safetensors(header, buffer, header_len=None):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if header_len is None else header_len) + h + buffer


def safetensors_seeds(c, args):
    buf = np.arange(6, dtype="<f4").tobytes() + np.arange(2, dtype="<i8").tobytes()
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "n": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
              "__metadata__": {"format": "pt"}}
    ok = safetensors(header, buf)
    c.add("safetensors", "ok.safetensors", ok)
    for cut, part in truncations(ok, [0, 7, 8, 9, len(ok) - len(buf), len(ok) - 16, len(ok) - 1]):
        c.add("safetensors", f"ok_cut{cut}.safetensors", part)
    for name, hl in [("header_len_max", (1 << 64) - 1), ("header_len_2p63", 1 << 63), ("header_len_8mib", 8 << 20),
                     ("header_len_short", 10)]:
        c.add("safetensors", name + ".safetensors", safetensors(header, buf, hl))
    for name, w in [("offsets_huge", {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, (1 << 64) - 1]}),
                    ("offsets_negative", {"dtype": "F32", "shape": [2, 3], "data_offsets": [-24, 0]}),
                    ("shape_overflow", {"dtype": "F32", "shape": [1 << 62, 1 << 62], "data_offsets": [0, 24]}),
                    ("shape_zero_huge", {"dtype": "F32", "shape": [0, 1 << 62], "data_offsets": [0, 0]}),
                    ("shape_not_list", {"dtype": "F32", "shape": 6, "data_offsets": [0, 24]}),
                    ("offsets_float", {"dtype": "F32", "shape": [2, 3], "data_offsets": [0.0, 24.5]})]:
        c.add("safetensors", name + ".safetensors", safetensors({"w": w}, buf[:24]))
    deep = b"[" * 100000 + b"]" * 100000
    c.add("safetensors", "json_depth_bomb.safetensors", struct.pack("<Q", len(deep)) + deep)
    for name, p in small_files(fixtures(args, "safetensors", "make_safetensors_fixtures.py"), (".safetensors",)):
        c.add_file("safetensors", "fixture_" + name, p)


# ---- HDF5: tl's weights and Keras -------------------------------------------------------------------------------


def h5_bytes(write, **options):
    f = io.BytesIO()
    with h5py.File(f, "w", **options) as h:
        write(h)
    return f.getvalue()


def tl_weights(h, chunked=False):
    rng = np.random.default_rng(0)
    extra = {"chunks": True, "compression": "gzip"} if chunked else {}
    h.create_dataset("conv1/weight", data=rng.standard_normal((4, 3, 3, 3)).astype("<f4"), **extra)
    h.create_dataset("bn1/running_mean", data=np.zeros(4, "<f4"))
    h.create_dataset("bn1/num_batches_tracked", data=np.int64(3))
    h.create_dataset("fc/weight", data=rng.standard_normal((2, 4)).astype("<f8"))
    h.create_dataset("_extra/fc/weight/momentum_buffer", data=np.zeros((2, 4), "<f4"))
    h.attrs["format"] = "tl-weights"
    h.attrs["format_version"] = np.int64(1)
    h.attrs["architecture"] = "resnet18"
    h.attrs["num_classes"] = np.int64(2)
    h.attrs["input_size"] = np.int64(32)
    h.attrs["mean"] = [0.485, 0.456, 0.406]
    h.attrs["std"] = [0.229, 0.224, 0.225]
    h.attrs["interpolation"] = "bilinear"
    h.attrs["crop_fraction"] = 0.875
    h.attrs["class_names"] = ["ants", "bees"]
    h.attrs["source"] = "tests/fuzz/make_corpus.py"
    h.attrs["training_state"] = json.dumps({"epoch": 1})


def hdf5_seeds(c, args):
    ok = h5_bytes(tl_weights)
    c.add("weights_file", "ok.h5", ok)
    c.add("weights_file", "chunked_gzip.h5", h5_bytes(lambda h: tl_weights(h, chunked=True)))
    c.add("weights_file", "latest_format.h5", h5_bytes(tl_weights, libver="latest"))
    step = max(1, len(ok) // 10)
    for cut, part in truncations(ok, [0, 8, 96, 512, 800, 2048] + list(range(0, len(ok), step))):
        c.add("weights_file", f"ok_cut{cut}.h5", part)

    def huge(h):
        # A chunked dataset with no chunks written: declares 2^40 floats in a file of a few KiB.
        h.create_dataset("w", shape=(1 << 20, 1 << 20), dtype="<f4", chunks=(1, 1024))
        h.attrs["format"] = "tl-weights"
        h.attrs["format_version"] = np.int64(1)
    c.add("weights_file", "huge_unallocated.h5", h5_bytes(huge))

    def lies(h):
        h.create_dataset("w", data=np.ones((2, 2), "<f4"))
        h.attrs["format"] = "tl-weights"
        h.attrs["format_version"] = np.int64(99)
        h.attrs["num_classes"] = np.int64(-5)
        h.attrs["mean"] = [1.0]
        h.attrs["class_names"] = ["a", "b", "c"]
    c.add("weights_file", "wrong_attributes.h5", h5_bytes(lies))

    def strings(h):
        h.create_dataset("w", data=np.array([b"x", b"y"]))
        h.create_dataset("a.b/c", data=np.array([np.nan], "<f4"))
        h.attrs["format"] = np.bytes_(b"tl-weights")
        h.attrs["format_version"] = np.int64(1)
    c.add("weights_file", "strings_nan.h5", h5_bytes(strings))

    # Keras: the fixture script's small broken files, tl-format files, and a model config of the wrong shape.
    for name, p in small_files(fixtures(args, "keras", "make_keras_fixtures.py"), (".h5",)):
        c.add_file("keras", "fixture_" + name, p)
    c.add("keras", "tl_weights.h5", ok)

    def keras(h, config):
        h.attrs["keras_version"] = "2.11.0"
        h.attrs["backend"] = "tensorflow"
        h.attrs["model_config"] = config
        w = h.create_group("model_weights")
        w.attrs["layer_names"] = [b"conv1", b"conv1_bn"]
        g = w.create_group("conv1/conv1")
        g.create_dataset("kernel:0", data=np.ones((3, 3, 3, 8), "<f4"))
        w["conv1"].attrs["weight_names"] = [b"conv1/kernel:0"]
        b = w.create_group("conv1_bn/conv1_bn")
        for n in ("gamma", "beta", "moving_mean", "moving_variance"):
            b.create_dataset(n + ":0", data=np.ones(8, "<f4"))
        w["conv1_bn"].attrs["weight_names"] = [f"conv1_bn/{n}:0".encode() for n in
                                               ("gamma", "beta", "moving_mean", "moving_variance")]
    layers = [{"class_name": "InputLayer", "config": {"name": "input_1", "batch_input_shape": [None, 224, 224, 3]}},
              {"class_name": "Conv2D", "config": {"name": "conv1", "filters": 8, "kernel_size": [3, 3],
                                                  "strides": [2, 2], "padding": "valid", "use_bias": False}},
              {"class_name": "BatchNormalization", "config": {"name": "conv1_bn", "epsilon": 0.001}}]
    config = json.dumps({"class_name": "Functional", "config": {"name": "mobilenet_0.25_224", "layers": layers}})
    c.add("keras", "partial_mobilenet.h5", h5_bytes(lambda h: keras(h, config)))
    c.add("keras", "config_depth_bomb.h5", h5_bytes(lambda h: keras(h, "[" * 50000 + "]" * 50000)))
    c.add("keras", "config_not_json.h5", h5_bytes(lambda h: keras(h, "{\"class_name\": ")))


# ---- ONNX -------------------------------------------------------------------------------------------------------


def onnx_seeds(c, args):
    import onnx
    from onnx import TensorProto, helper

    folder = fixtures(args, "onnx", "make_onnx_fixtures.py")
    for name, p in small_files(folder, (".onnx",)):
        c.add_file("onnx", "fixture_" + name, p)

    def conv(weight, extra_nodes=(), extra_inits=()):
        nodes = [helper.make_node("Conv", ["input", weight.name], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  strides=[2, 2])] + list(extra_nodes)
        graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, 64, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [weight] + list(extra_inits))
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()

    def tensor(name, data_type, dims, raw):
        # Built by hand: onnx.helper refuses dims that disagree with the data, which is the point here.
        t = TensorProto()
        t.name, t.data_type = name, data_type
        t.dims.extend(dims)
        t.raw_data = raw
        return t

    w = tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.ones(108, "<f4").tobytes())
    ok = conv(w)
    c.add("onnx", "tiny_conv.onnx", ok)
    for cut, part in truncations(ok, range(0, len(ok), max(1, len(ok) // 12))):
        c.add("onnx", f"tiny_conv_cut{cut}.onnx", part)
    for name, t in [
        ("negative_dims", tensor("w", TensorProto.FLOAT, [-4, 3, 3, 3], b"")),
        ("overflow_dims", tensor("w", TensorProto.FLOAT, [1 << 40, 1 << 40, 1 << 40], b"")),
        ("short_raw", tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], b"\0" * 7)),
        ("int8_raw", tensor("w", TensorProto.INT8, [4, 3, 3, 3], b"\1" * 108)),
        ("float16", tensor("w", TensorProto.FLOAT16, [2], np.ones(2, "<f2").tobytes())),
        ("string", helper.make_tensor("w", TensorProto.STRING, [1], [b"x"])),
    ]:
        c.add("onnx", name + ".onnx", conv(t))
    q = [helper.make_node("QuantizeLinear", ["y", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], axis=7),
         helper.make_node("Constant", [], ["k"], value=helper.make_tensor("kv", TensorProto.INT64, [2], [1, -1])),
         helper.make_node("Reshape", ["dq", "k"], ["r"]),
         helper.make_node("Clip", ["r"], ["c"], min=0.0, max=6.0),
         helper.make_node("Gemm", ["c", "w", "s"], ["g"], transB=1)]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [3], [0.1, 0.2, 0.0]),
             helper.make_tensor("z", TensorProto.UINT8, [1], [128])]
    c.add("onnx", "quant_nodes.onnx", conv(w, q, inits))
    # The graph of the fixtures' quantized MobileNetV2 with every initializer emptied: small, and it drives the
    # graph walk (which fails at the first shape check) rather than only the protobuf decoder.
    quant = os.path.join(folder, "quant.onnx")
    if os.path.exists(quant):
        m = onnx.load(quant)
        for t in m.graph.initializer:
            del t.dims[:]
            t.dims.append(1)
            if t.raw_data:
                t.raw_data = t.raw_data[:onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[t.data_type].itemsize]
        c.add("onnx", "mobilenet_v2_quant_skeleton.onnx", m.SerializeToString())


# ---- images -----------------------------------------------------------------------------------------------------


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def image_seeds(c, args):
    from PIL import Image

    folder = fixtures(args, "data", "make_data_fixtures.py")
    for name, p in small_files(os.path.join(folder, "decode"), (".jpg", ".jpeg", ".png")):
        c.add_file("png" if name.endswith(".png") else "jpeg", "fixture_" + name, p)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))

    def save(im, **options):
        f = io.BytesIO()
        im.save(f, **options)
        return f.getvalue()
    jpegs = {"rgb.jpg": save(img, format="JPEG", quality=80),
             "progressive.jpg": save(img, format="JPEG", progressive=True),
             "gray.jpg": save(img.convert("L"), format="JPEG"),
             "cmyk.jpg": save(img.convert("CMYK"), format="JPEG"),
             "subsampled_420.jpg": save(img, format="JPEG", subsampling=2),
             "restart.jpg": save(img, format="JPEG", optimize=True)}
    for name, data in jpegs.items():
        c.add("jpeg", name, data)
    data = jpegs["rgb.jpg"]
    markers = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF)]
    for cut, part in truncations(data, markers + [len(data) - 2]):
        c.add("jpeg", f"rgb_cut{cut}.jpg", part)
    sof = data.find(b"\xff\xc0")
    if sof >= 0:  # SOF0 declaring 65535 x 65535
        big = bytearray(data)
        big[sof + 5:sof + 9] = b"\xff\xff\xff\xff"
        c.add("jpeg", "huge_dimensions.jpg", bytes(big))
        zero = bytearray(data)
        zero[sof + 5:sof + 9] = b"\0\0\0\0"
        c.add("jpeg", "zero_dimensions.jpg", bytes(zero))

    pngs = {"rgb.png": save(img, format="PNG"), "rgba.png": save(img.convert("RGBA"), format="PNG"),
            "palette.png": save(img.convert("P"), format="PNG", transparency=3),
            "gray.png": save(img.convert("L"), format="PNG"),
            "gray16.png": save(Image.fromarray(rng.integers(0, 65535, (8, 8)).astype(np.uint16)), format="PNG"),
            "bits1.png": save(img.convert("1"), format="PNG")}
    for name, d in pngs.items():
        c.add("png", name, d)
    d = pngs["rgb.png"]
    cuts, pos = [8], 8
    while pos + 8 <= len(d):
        n = struct.unpack(">I", d[pos:pos + 4])[0]
        cuts += [pos + 4, pos + 8, pos + 8 + n // 2, pos + 12 + n]
        pos += 12 + n
    for cut, part in truncations(d, cuts):
        c.add("png", f"rgb_cut{cut}.png", part)
    sig = b"\x89PNG\r\n\x1a\n"
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
    for name, (w, h, depth, colour, interlace) in {
            "huge_dimensions.png": (0x7FFFFFFF, 0x7FFFFFFF, 8, 2, 0),
            "many_pixels.png": (1 << 16, 1 << 16, 8, 6, 0),
            "zero_width.png": (0, 1, 8, 2, 0),
            "bad_depth.png": (4, 4, 3, 2, 0),
            "interlaced.png": (4, 4, 8, 2, 1)}.items():
        ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))
        c.add("png", name, sig + ihdr + idat + png_chunk(b"IEND", b""))
    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4096, 4096, 8, 6, 0, 0, 0))
    c.add("png", "deflate_bomb.png", sig + ihdr + png_chunk(b"IDAT", bomb) + png_chunk(b"IEND", b""))


# ---- tl_train --config ------------------------------------------------------------------------------------------


def config_seeds(c):
    seeds = {
        "recipe.ini": 'data = "fashion-mnist:0,1:20"\nmodel = "resnet18"\nweights = "none"\nstrategy = "full"\n'
                      "image-size = 32\nepochs = 1\nbatch-size = 8\nout = \"runs/x\"\n",
        "full.toml": '# every option\ndata = "d"\nval-data = "v"\nval-fraction = 0.3\nmodel = "mobilenet_v2"\n'
                     'weights = "w.h5"\nreset-head = true\nhead = "mlp:64:0.2"\nstrategy = "finetune"\n'
                     'unfreeze = "layer3,layer4"\nunfreeze-schedule = "0:fc,3:layer4"\ntrain-frozen-bn = false\n'
                     'optimizer = "sgd"\nlr = 1e-2\nbase-lr = 1e-3\ngroup-lr = ["layer4=1e-4", "fc=1e-2"]\n'
                     "momentum = 0.9\nnesterov = true\nweight-decay = 1e-4\ndecay-norm-and-bias = false\n"
                     'label-smoothing = 0.1\nscheduler = "step:3:0.1"\nepochs = 3\nbatch-size = 4\nworkers = 0\n'
                     'image-size = 64\nno-augment = true\nstrict-data = true\ncache-features = "off"\nseed = 7\n'
                     'out = "o"\nresume-epochs = 4\ncompare-scratch = true\nkernels = "native"\n',
        "sections.ini": "[default]\ndata=d\nmodel=resnet18\n[other]\nlr=1\n",
        "resume.toml": 'resume = "runs/x"\nresume-epochs = 9\n',
        "bad_values.toml": 'epochs = -1\nbatch-size = "x"\nlr = 1e999\nworkers = 99999999999999999999\n',
        "bad_group_lr.toml": 'data = "d"\nmodel = "resnet18"\ngroup-lr = ["=1", "a=", "b=1e-3x", "c"]\n',
        "unknown_option.toml": "data = d\nfrobnicate = 3\n",
        "unterminated.toml": 'data = "d\nmodel = \'resnet18\n[[\n',
        "arrays.toml": "unfreeze = [\"a\", [\"b\", [\"c\"]]]\ndata = [1, 2, 3]\n",
        "self_config.toml": 'config = "self_config.toml"\ndata = "d"\n',
        "bad_model.toml": 'data = "d"\nmodel = "resnet*"\n',
        "nan.toml": 'data = "d"\nmodel = "resnet18"\nlr = nan\nmomentum = inf\nval-fraction = -0\n',
        "long_line.toml": "data = \"" + "x" * 20000 + "\"\n",
        "many_lines.toml": "".join(f"seed = {i}\n" for i in range(3000)),
        "empty.toml": "",
    }
    for name, text in seeds.items():
        c.add("train_config", name, text.encode())


# ---- the sandboxed HDF5 reader's result (weights/sandbox_wire.h) ------------------------------------------

def wire_string(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<I", len(data)) + data


def wire_metadata(architecture="resnet18", classes=2, names=(), source="fuzz seed", state=""):
    return (wire_string(architecture) + struct.pack("<qq", classes, 224) +
            struct.pack("<6d", 0.485, 0.456, 0.406, 0.229, 0.224, 0.225) + wire_string("bilinear") +
            struct.pack("<d", 0.875) + struct.pack("<I", len(names)) + b"".join(map(wire_string, names)) +
            wire_string(source) + wire_string(state))


class WireData:
    """The data area: each tensor's bytes at a multiple of 64."""

    def __init__(self):
        self.bytes = b""

    def place(self, data):
        self.bytes += b"\0" * (-len(self.bytes) % 64)
        offset = len(self.bytes)
        self.bytes += data
        return offset


def wire_tensor(area, dtype, shape, data=None, offset=None):
    """dtype 0 float32, 1 float64, 2 int64; the data (zeros by default) goes into the area unless an offset
    is given (a lie)."""
    if offset is None:
        count = 1
        for d in shape:
            count *= d
        offset = area.place(b"\0" * (count * (4 if dtype == 0 else 8)) if data is None else data)
    at = offset
    return struct.pack("<BB", dtype, len(shape)) + struct.pack(f"<{len(shape)}q", *shape) + struct.pack("<Q", at)


def wire_input(kind, area, index):
    """The fuzz entry's input: byte 0 picks the payload (even: WeightsFile, odd: Imported), bytes 1-4 the
    size of the data area, then the data area and the index."""
    return bytes([kind]) + struct.pack("<I", len(area.bytes)) + area.bytes + index


def reply_seeds(c):
    def tensors(area):
        return [("conv1.weight", wire_tensor(area, 0, [4, 3, 3, 3], np.arange(108, dtype=np.float32).tobytes())),
                ("bn1.num_batches_tracked", wire_tensor(area, 2, [], struct.pack("<q", 7))),
                ("empty", wire_tensor(area, 0, [0, 4]))]

    area = WireData()
    weights = (wire_metadata(names=("ants", "bees"), state='{"epoch": 1}') + struct.pack("<I", 4) +
               b"".join(b"\0" + wire_string(n) + t for n, t in tensors(area)) +
               b"\1" + wire_string("optimizer.lr") + wire_tensor(area, 1, [1], struct.pack("<d", 1e-3)))
    c.add("sandbox_reply", "weights", wire_input(0, area, weights))
    for cut in (1, 9, 40, len(weights) // 2, len(weights) - 1):
        c.add("sandbox_reply", f"weights_cut{cut}", wire_input(0, area, weights[:cut]))
    area2 = WireData()
    imported = (wire_metadata(architecture="mobilenet_v2_keras", classes=0) + struct.pack("<I", 3) +
                b"".join(wire_string(n) + t for n, t in tensors(area2)) + wire_string("Keras .h5"))
    c.add("sandbox_reply", "imported", wire_input(1, area2, imported))
    c.add("sandbox_reply", "empty_weights", wire_input(0, WireData(), wire_metadata() + struct.pack("<I", 0)))

    def one(tensor_bytes, area):
        return wire_metadata() + struct.pack("<I", 1) + b"\0" + wire_string("t") + tensor_bytes

    for name, shape, dtype, offset in [("huge_tensor", [1 << 40, 1 << 40], 0, 0),
                                       ("overflowing_dims", [2**63 - 1, 3], 2, 0),
                                       ("zero_among_huge", [0, 2**62, 2**62], 0, 0),
                                       ("negative_dim", [-4], 0, 0),
                                       ("misaligned", [4], 0, 4),
                                       ("past_the_end", [4], 0, 1 << 20),
                                       ("bad_dtype", [1], 7, 0)]:
        area = WireData()
        area.place(b"\0" * 16)
        c.add("sandbox_reply", name, wire_input(0, area, one(wire_tensor(area, dtype, shape, offset=offset), area)))
    area = WireData()
    area.place(b"\0" * 16)
    c.add("sandbox_reply", "rank_200", wire_input(0, area, one(struct.pack("<BB", 0, 200), area)))
    area = WireData()
    overlap = (wire_metadata() + struct.pack("<I", 2) + b"\0" + wire_string("a") + wire_tensor(area, 0, [4]) +
               b"\0" + wire_string("b") + wire_tensor(area, 0, [4], offset=0))
    c.add("sandbox_reply", "overlap", wire_input(0, area, overlap))
    c.add("sandbox_reply", "many_names", wire_input(0, WireData(), wire_string("a") + struct.pack("<qq", 1, 1) +
          struct.pack("<6d", *[0.5] * 6) + wire_string("x") + struct.pack("<d", 1) + struct.pack("<I", 2**32 - 1)))
    c.add("sandbox_reply", "long_string", wire_input(0, WireData(), struct.pack("<I", 2**32 - 1) + b"abc"))
    area = WireData()
    twice = wire_string("t") + wire_tensor(area, 0, [1])
    twice += wire_string("t") + wire_tensor(area, 0, [1])
    c.add("sandbox_reply", "duplicate", wire_input(1, area, wire_metadata() + struct.pack("<I", 2) + twice +
                                                   wire_string("x")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", help="an existing fixture folder (BUILD/fixtures) instead of running "
                                           "tests/fixtures/*.py")
    parser.add_argument("--out", default=os.path.join(HERE, "corpus"))
    parser.add_argument("--only-sandbox-reply", action="store_true",
                        help="write the sandbox_reply seeds only (no fixtures needed; the others stay as they are)")
    args = parser.parse_args()
    if args.only_sandbox_reply:
        folder = os.path.join(args.out, "sandbox_reply")
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.startswith(GENERATED_PREFIX):
                os.remove(os.path.join(folder, name))
        c = Corpus(args.out)
        reply_seeds(c)
        print(f"make_corpus.py: wrote {c.total} bytes into {folder}")
        return
    clear(args.out)
    c = Corpus(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        pth_seeds(c, args)
        safetensors_seeds(c, args)
        hdf5_seeds(c, args)
        onnx_seeds(c, args)
        image_seeds(c, args)
        config_seeds(c)
        reply_seeds(c)
    counts = {t: len(os.listdir(os.path.join(args.out, t))) for t in sorted(os.listdir(args.out))}
    print(f"make_corpus.py: wrote {c.total} bytes into {args.out}: {counts}")
    if c.total > (2 << 20) * 3 // 4:
        sys.exit(f"make_corpus.py: the corpus is {c.total} bytes; keep it well under 2 MiB")


if __name__ == "__main__":
    main()
