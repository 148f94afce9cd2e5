"""The teacher and the student of the demo recipe (PyTorch); see training/README.md.

The student is four modules, one per ONNX stage of the edgeqa student contract
(``docs/student-contract.md``):

* ``FrameEncoder``: a per-frame CNN, ``frames [N,3,32,32] -> frame_features [N,18,48]``: a 4x4
  grid of tokens plus one spatial soft-argmax keypoint (x, y) per channel;
* ``AudioEncoder``: a CNN over one log-mel window, ``log_mel [N,1,32,16] -> audio_features [N,32]``;
* ``QuestionEncoder``: word embeddings, a 1-D convolution, masked mean and max pooling,
  ``question_ids, question_mask [1,L] -> question_features [1,64]``;
* ``Head``: language-aware pooling: the question modulates every token (FiLM) before spatial
  pooling and gates the keypoints, a temporal convolution gives motion features, the question gates
  them and weights the frames, and an MLP answers.

The teacher (``FusionTeacher``) is the same design, wider, with a cross-modal fusion transformer
over per-frame visual, audio and question tokens in its head. Its fused per-frame features are the
targets of the student's feature distillation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FRAMES = 8
GRID = 4  # spatial tokens per side
TOKENS = GRID * GRID
AUX_CLASSES = 7 + 4 + 6  # colour (none + 6), shape (none + 3), direction (none + 5)


def _cnn(channels: list[tuple[int, int]], cin: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cout, stride in channels:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU()]
        cin = cout
    return nn.Sequential(*layers)


class FrameEncoder(nn.Module):
    """Per-frame CNN with two outputs packed into one tensor ``[N, 16 + 2, C]``:

    * a 4x4 grid of ``C``-d tokens (what is where, coarsely);
    * spatial soft-argmax keypoints: for each of the ``C`` channels of the 8x8 feature map, the
      softmax-weighted mean x and y position (rows 16 and 17), i.e. where that feature is, at
      sub-cell precision. Channels that respond to one colour or shape track that object, so
      motion is a change of keypoints between frames.
    """

    def __init__(self, channels=((16, 2), (32, 2), (48, 1)), out: int = 48):
        super().__init__()
        self.cnn = _cnn(list(channels), 3)
        c = channels[-1][0]
        self.down = nn.Sequential(nn.Conv2d(c, out, 3, 2, 1), nn.ReLU())
        self.kp = nn.Conv2d(c, out, 1)
        side = 8
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        xy = torch.stack([xs.flatten(), ys.flatten()], dim=1).to(torch.float32)
        self.register_buffer("xy", (xy - (side - 1) / 2) / ((side - 1) / 2))  # [64,2] in [-1,1]
        self.dim = out

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # [N,3,32,32] -> [N,18,C]
        h = self.cnn(frames)  # [N,c,8,8]
        tokens = self.down(h).flatten(2).transpose(1, 2)  # [N,16,C]
        heat = torch.softmax(self.kp(h).flatten(2), dim=2)  # [N,C,64]
        kp = torch.matmul(heat, self.xy).transpose(1, 2)  # [N,2,C]
        return torch.cat([tokens, kp], dim=1)


class AudioEncoder(nn.Module):
    """Log-mel window -> vector. Keeps the frequency axis (pitch) and averages over time."""

    def __init__(self, channels=((16, 2), (32, 2)), out_dim: int = 32, n_mels: int = 32):
        super().__init__()
        self.cnn = _cnn(list(channels), 1)
        freq = n_mels
        for _ in channels:
            freq = (freq + 1) // 2
        self.proj = nn.Linear(channels[-1][0] * freq, out_dim)
        self.dim = out_dim

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # [N,1,M,T] -> [N,D]
        x = (log_mel + 8.0) * 0.25  # log-mel of these clips spans about -14..6
        x = self.cnn(x).mean(dim=3)  # [N,C,M']
        return F.relu(self.proj(x.flatten(1)))


class QuestionEncoder(nn.Module):
    def __init__(self, vocab: int, emb: int = 32, hidden: int = 48, out_dim: int = 64):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.conv = nn.Conv1d(emb, hidden, 3, padding=1)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.dim = out_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B,L] x2 -> [B,D]
        m = mask.to(torch.float32).unsqueeze(2)  # [B,L,1]
        x = self.emb(ids) * m
        h = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # [B,L,H]
        mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        mx = (h + (m - 1.0) * 1e4).amax(1)
        return F.relu(self.proj(torch.cat([mean, mx], dim=1)))


class Head(nn.Module):
    """Question + per-frame tokens, keypoints and audio -> answer logits (see the module docs)."""

    def __init__(self, labels: int, c: int = 48, ca: int = 32, dq: int = 64, d: int = 64):
        super().__init__()
        self.d = d
        self.tok = nn.Linear(c, d)
        self.pos = nn.Parameter(torch.randn(TOKENS, d) * 0.1)
        self.film = nn.Linear(dq, 2 * d)
        self.tok2 = nn.Linear(d, d)
        self.kp_gate = nn.Linear(dq, c)
        self.frame_in = nn.Linear(2 * d + 2 * c + ca, d)
        self.tpos = nn.Parameter(torch.randn(FRAMES, d) * 0.1)
        self.tconv = nn.Conv1d(d, d, 3, padding=1)
        self.gate = nn.Linear(dq, FRAMES * d)
        self.tquery = nn.Linear(dq, d)
        self.out = nn.Sequential(nn.Linear(FRAMES * d + d + dq, 128), nn.ReLU(), nn.Linear(128, labels))

    def features(self, q: torch.Tensor, v: torch.Tensor, a: torch.Tensor):
        """Logits plus the per-frame appearance (``u``) and motion (``m``) features."""
        u = self.appearance(q, v, a)
        m = F.relu(self.tconv(u.transpose(1, 2))).transpose(1, 2)  # motion / onsets, per frame
        return self.answer(q, m), u, m

    def appearance(self, q: torch.Tensor, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Per-frame summary of what the question asks about, ``[B,F,d]``."""
        kp = v[:, :, TOKENS:]  # [B,F,2,C] keypoints
        v = v[:, :, :TOKENS]
        b, f, s, c = v.shape
        scale, shift = self.film(q).reshape(b, 1, 1, 2 * self.d).chunk(2, dim=3)
        # every token, modulated by the question (FiLM), then pooled over space per frame:
        # text-dependent pooling keeps what the question asks about
        t = F.relu((self.tok(v) + self.pos) * (1 + scale) + shift)  # [B,F,S,d]
        t = F.relu(self.tok2(t))
        kp = kp * torch.sigmoid(self.kp_gate(q)).reshape(b, 1, 1, c)  # the question picks keypoints
        u = torch.cat([t.amax(2), t.mean(2), kp.reshape(b, f, 2 * c), a], dim=2)
        return F.relu(self.frame_in(u)) + self.tpos

    def answer(self, q: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Logits from the per-frame motion features ``m [B,F,d]`` and the question."""
        b, f, _ = m.shape
        # language-aware gating of every (frame, channel), then the frames in time order
        g = m * torch.sigmoid(self.gate(q)).reshape(b, f, self.d)
        # text-dependent temporal pooling: the question weights the frames
        w = torch.softmax(torch.matmul(g, self.tquery(q).unsqueeze(2)) / math.sqrt(self.d), dim=1)  # [B,F,1]
        pooled_t = torch.matmul(w.transpose(1, 2), g).reshape(b, self.d)
        return self.out(torch.cat([g.reshape(b, f * self.d), pooled_t, q], dim=1))

    def forward(self, q, v, a):
        return self.features(q, v, a)[0]


class Student(nn.Module):
    """The four stages together, for training; ``export_stages`` writes them one by one."""

    def __init__(self, vocab: int, labels: int):
        super().__init__()
        self.frame_encoder = FrameEncoder()
        self.audio_encoder = AudioEncoder()
        self.question_encoder = QuestionEncoder(vocab)
        self.head = Head(labels, c=self.frame_encoder.dim, ca=self.audio_encoder.dim, dq=self.question_encoder.dim)
        # training only (not exported): per-token colour and shape of the object centred there
        self.aux = nn.Linear(self.frame_encoder.dim, AUX_CLASSES)

    def encode_clips(self, frames: torch.Tensor, mels: torch.Tensor):
        """frames [B,F,3,H,W], mels [B,A,1,M,T] -> [B,F,S,C], [B,A,Ca]."""
        b = frames.shape[0]
        v = self.frame_encoder(frames.flatten(0, 1)).reshape(b, FRAMES, TOKENS + 2, -1)
        a = self.audio_encoder(mels.flatten(0, 1)).reshape(b, FRAMES, -1)
        return v, a

    def forward(self, frames, mels, clip_index, ids, mask):
        """Logits, per-frame appearance and motion features, and per-clip token auxiliaries."""
        v, a = self.encode_clips(frames, mels)
        q = self.question_encoder(ids, mask)
        return (*self.head.features(q, v[clip_index], a[clip_index]), self.aux(v[:, :, :TOKENS]))


class FusionHead(Head):
    """The teacher's head: the student's language-aware pooling, wider, with a transformer that
    fuses each frame's visual summary, its audio window and the question by joint (cross-modal)
    self-attention before the temporal reasoning."""

    def __init__(self, labels: int, c: int, ca: int, dq: int, d: int, layers: int = 2):
        super().__init__(labels, c=c, ca=ca, dq=dq, d=d)
        self.aud_in = nn.Linear(ca, d)
        self.q_in = nn.Linear(dq, d)
        self.kind = nn.Parameter(torch.randn(3, d) * 0.02)
        self.fuse = nn.ModuleList([nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True,
                                                              norm_first=True) for _ in range(layers)])

    def features(self, q, v, a):
        u = self.appearance(q, v, a)
        f = u.shape[1]
        x = torch.cat([u + self.kind[0], F.relu(self.aud_in(a)) + self.tpos + self.kind[1],
                       (F.relu(self.q_in(q)) + self.kind[2]).unsqueeze(1)], dim=1)
        fused = []
        for layer in self.fuse:
            x = layer(x)
            fused.append(torch.cat([x[:, :f], x[:, f : 2 * f]], dim=2))  # [B,F,2d]
        m = F.relu(self.tconv((x[:, :f] + u).transpose(1, 2))).transpose(1, 2)
        return self.answer(q, m), fused[0], fused[-1]


class FusionTeacher(Student):
    """The teacher: wider encoders and a cross-modal fusion transformer in the head."""

    def __init__(self, vocab: int, labels: int, d: int = 96):
        nn.Module.__init__(self)
        self.frame_encoder = FrameEncoder(channels=((32, 2), (64, 2), (64, 1)), out=64)
        self.audio_encoder = AudioEncoder(channels=((32, 2), (64, 2)), out_dim=64)
        self.question_encoder = QuestionEncoder(vocab, emb=64, hidden=96, out_dim=96)
        self.head = FusionHead(labels, c=64, ca=64, dq=96, d=d)
        self.aux = nn.Linear(64, AUX_CLASSES)
        self.d = d


# ------------------------------------------------------------------------------- ONNX stages


class _QuestionStage(nn.Module):
    def __init__(self, enc: QuestionEncoder):
        super().__init__()
        self.enc = enc

    def forward(self, question_ids, question_mask):
        return self.enc(question_ids, question_mask)


class _HeadStage(nn.Module):
    def __init__(self, head: Head):
        super().__init__()
        self.head = head

    def forward(self, question_features, frame_features, audio_features):
        return self.head(question_features, frame_features, audio_features)


def export_stages(student: Student, out_dir, max_len: int, opset: int = 17) -> None:
    """Writes ``frame_encoder.onnx``, ``audio_encoder.onnx``, ``question_encoder.onnx``, ``head.onnx``.

    Encoders take the contract's batch of all ``F`` frames / ``A`` segments at once.
    """
    student = student.eval()
    c = student.frame_encoder.dim
    ca = student.audio_encoder.dim
    dq = student.question_encoder.dim
    stages = [
        ("frame_encoder", student.frame_encoder, (torch.zeros(FRAMES, 3, 32, 32),), ["frames"], ["frame_features"]),
        ("audio_encoder", student.audio_encoder, (torch.zeros(FRAMES, 1, 32, 16),), ["log_mel"], ["audio_features"]),
        ("question_encoder", _QuestionStage(student.question_encoder),
         (torch.zeros(1, max_len, dtype=torch.int64), torch.ones(1, max_len, dtype=torch.int64)),
         ["question_ids", "question_mask"], ["question_features"]),
        ("head", _HeadStage(student.head),
         (torch.zeros(1, dq), torch.zeros(1, FRAMES, TOKENS + 2, c), torch.zeros(1, FRAMES, ca)),
         ["question_features", "frame_features", "audio_features"], ["answer_logits"]),
    ]
    for name, module, args, inputs, outputs in stages:
        torch.onnx.export(module, args, str(out_dir / f"{name}.onnx"), input_names=inputs, output_names=outputs,
                          opset_version=opset, do_constant_folding=True, dynamo=False)


# ------------------------------------------------------------------------------- selector


class Selector(nn.Module):
    """Question-aware frame relevance over ``R`` candidate frames: two ONNX stages, so that the
    work per question stays small.

    * ``selector_keys`` (``keys``), run once per frame as it is encoded:
      ``frame_features [N,18,C] -> frame_keys [N,h]``, the mean of the frame's 16 tokens (one
      matrix product with fixed weights, which also skips the keypoint rows) projected to ``h``
      channels;
    * ``selector`` (``score``), run on every question:
      ``question_features [1,Dq]``, ``candidate_keys [1,R,h] -> frame_scores [1,R]`` (logits): the
      question gates the keys' channels (language-aware gating, folded into the rows of an
      ``h x m`` mixing matrix so that each candidate costs one small matrix product), then a ReLU
      and a linear map give one score per candidate.

    Each frame is scored on its own; the runtime's rule (``chosen_span``) makes one part of the
    stream of the frames scoring above zero. Versions with temporal convolutions over the
    candidates found the validation windows no better and cost more per question
    (``training/README.md``).
    """

    def __init__(self, c: int = 48, dq: int = 64, h: int = 8, m: int = 8):
        super().__init__()
        pool = torch.zeros(1, TOKENS + 2)
        pool[0, :TOKENS] = 1.0 / TOKENS
        self.register_buffer("pool", pool)
        self.proj = nn.Linear(c, h)
        self.gate = nn.Linear(dq, h)
        self.mix = nn.Parameter(torch.randn(h, m) / math.sqrt(h))
        self.mix_bias = nn.Parameter(torch.zeros(m))
        self.out = nn.Linear(m, 1)
        self.h = h

    def keys(self, frame_features: torch.Tensor) -> torch.Tensor:  # [...,18,C] -> [...,h]
        return F.relu(self.proj(torch.matmul(self.pool, frame_features).squeeze(-2)))

    def score(self, question_features: torch.Tensor, candidate_keys: torch.Tensor) -> torch.Tensor:
        # gating the keys' channels is gating the mixing matrix's rows: [B,h,1] * [h,m]
        mix = torch.sigmoid(self.gate(question_features)).unsqueeze(2) * self.mix  # [B,h,m]
        x = F.relu(torch.matmul(candidate_keys, mix) + self.mix_bias)  # [B,R,m]
        return self.out(x).squeeze(2)  # [B,R]

    def forward(self, question_features: torch.Tensor, candidate_features: torch.Tensor) -> torch.Tensor:
        return self.score(question_features, self.keys(candidate_features))


class _KeysStage(nn.Module):
    def __init__(self, selector: Selector):
        super().__init__()
        self.selector = selector

    def forward(self, frame_features):
        return self.selector.keys(frame_features)


class _ScoreStage(nn.Module):
    def __init__(self, selector: Selector):
        super().__init__()
        self.selector = selector

    def forward(self, question_features, candidate_keys):
        return self.selector.score(question_features, candidate_keys)


def export_selector(selector: Selector, out_dir, candidates: int, c: int = 48, dq: int = 64, opset: int = 17) -> None:
    """Writes ``selector_keys.onnx`` (the frame encoder's batch of ``FRAMES`` frames) and
    ``selector.onnx`` (``candidates`` candidate frames) into ``out_dir``."""
    selector = selector.eval()
    torch.onnx.export(_KeysStage(selector), (torch.zeros(FRAMES, TOKENS + 2, c),), str(out_dir / "selector_keys.onnx"),
                      input_names=["frame_features"], output_names=["frame_keys"], opset_version=opset,
                      do_constant_folding=True, dynamo=False)
    args = (torch.zeros(1, dq), torch.zeros(1, candidates, selector.h))
    torch.onnx.export(_ScoreStage(selector), args, str(out_dir / "selector.onnx"),
                      input_names=["question_features", "candidate_keys"], output_names=["frame_scores"],
                      opset_version=opset, do_constant_folding=True, dynamo=False)
