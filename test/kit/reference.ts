/**
 * Slow, obviously-correct float64 references written with loops, independent of the layers' tensor
 * code: GQA/MHA, GTA in the paper's per-head form (Eq. 8 with W_P,i = E_j + Delta_g columns), and
 * naive MLA. Matrices are row-major `number[][]`; weights use the math layout `[in, out]`.
 */

export type Mat = number[][];

export function matmul(a: Mat, b: Mat): Mat {
  const n = a.length;
  const k = b.length;
  const m = b[0].length;
  const out: Mat = [];
  for (let i = 0; i < n; i++) {
    const row = new Array<number>(m).fill(0);
    for (let p = 0; p < k; p++) {
      const av = a[i][p];
      if (av === 0) continue;
      for (let j = 0; j < m; j++) row[j] += av * b[p][j];
    }
    out.push(row);
  }
  return out;
}

export function addBias(a: Mat, bias: number[] | null | undefined): Mat {
  return bias ? a.map((row) => row.map((v, j) => v + bias[j])) : a;
}

function cols(a: Mat, from: number, to: number): Mat {
  return a.map((row) => row.slice(from, to));
}

function transpose(a: Mat): Mat {
  return a[0].map((_, j) => a.map((row) => row[j]));
}

/** Rotate-half RoPE on rows `x [T, d]` at positions `pos`. */
export function rope(x: Mat, pos: number[], base = 10000): Mat {
  const d = x[0].length;
  const half = d / 2;
  return x.map((row, t) => {
    const out = new Array<number>(d);
    for (let j = 0; j < half; j++) {
      const angle = pos[t] * Math.pow(base, (-2 * j) / d);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      out[j] = row[j] * c - row[j + half] * s;
      out[j + half] = row[j + half] * c + row[j] * s;
    }
    return out;
  });
}

/** `softmax(q k^T * scale + mask) v` for one head; `allowed[t][s]` false masks a key. */
export function attendHead(q: Mat, k: Mat, v: Mat, scale: number, allowed: boolean[][]): { out: Mat; probs: Mat } {
  const probs: Mat = q.map((qt, t) => {
    const scores = k.map((ks, s) => (allowed[t][s] ? qt.reduce((acc, qv, j) => acc + qv * ks[j], 0) * scale : -Infinity));
    const max = Math.max(...scores);
    const e = scores.map((z) => (z === -Infinity ? 0 : Math.exp(z - max)));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((z) => z / sum);
  });
  return { out: matmul(probs, v), probs };
}

/** Causal mask with key padding: `allowed[t][s] = s <= t && pad[s]`. */
export function causalAllowed(t: number, pad?: number[]): boolean[][] {
  return Array.from({ length: t }, (_, i) => Array.from({ length: t }, (_, s) => s <= i && (pad ? pad[s] > 0 : true)));
}

export interface GqaWeights {
  wq: Mat;
  wk: Mat;
  wv: Mat;
  wo: Mat; // [D, Hq*Dh], [D, Hkv*Dh], [D, Hkv*Dh], [Hq*Dh, D]
  bq?: number[];
  bk?: number[];
  bv?: number[];
  bo?: number[];
}

/** GQA on one sequence `x [T, D]`. Query head i reads KV head floor(i / (hq/hkv)). */
export function gqaReference(
  x: Mat,
  w: GqaWeights,
  cfg: { hq: number; hkv: number; dh: number; base?: number; useRope?: boolean },
  allowed: boolean[][],
): { out: Mat; probs: Mat[] } {
  const pos = x.map((_, t) => t);
  const q = addBias(matmul(x, w.wq), w.bq);
  const k = addBias(matmul(x, w.wk), w.bk);
  const v = addBias(matmul(x, w.wv), w.bv);
  const heads: Mat[] = [];
  const probs: Mat[] = [];
  for (let i = 0; i < cfg.hq; i++) {
    const kv = Math.floor(i / (cfg.hq / cfg.hkv));
    const rotate = (m: Mat) => (cfg.useRope === false ? m : rope(m, pos, cfg.base));
    const qi = rotate(cols(q, i * cfg.dh, (i + 1) * cfg.dh));
    const ki = rotate(cols(k, kv * cfg.dh, (kv + 1) * cfg.dh));
    const vi = cols(v, kv * cfg.dh, (kv + 1) * cfg.dh);
    const r = attendHead(qi, ki, vi, 1 / Math.sqrt(cfg.dh), allowed);
    heads.push(r.out);
    probs.push(r.probs);
  }
  const merged = x.map((_, t) => heads.flatMap((h) => h[t]));
  return { out: addBias(matmul(merged, w.wo), w.bo), probs };
}

export interface GtaWeights {
  wq: Mat;
  wk: Mat;
  wc: Mat;
  wg: Mat;
  wo: Mat; // [D, Hq*Dh], [D, Hk*Dh], [D, Hc*Dl], [D, W], [W, D]
  delta: number[][][]; // [Hq][Dl][r*Dl]
  bq?: number[];
  bk?: number[];
  bc?: number[];
  bg?: number[];
}

export interface GtaShape {
  heads: number;
  dh: number;
  hq: number;
  hk: number;
  hc: number;
  dl: number;
  base?: number;
}

/**
 * GTA in the paper's per-head form (ATTENTION_SPEC 4.2 Eq. 8 and the 4.3 equivalence): head
 * i = g*G + j (G = heads/hq) has W_P,i = E_j + Delta_g[:, j*Dh:(j+1)*Dh], where E_j copies latent
 * coordinates [(j*Dh) mod Dl, +Dh); O = sum_i ((A_g C_c(g)) W_P,i * sigmoid(x W_G,i)) W_O,i.
 */
export function gtaPerHeadReference(x: Mat, w: GtaWeights, cfg: GtaShape, allowed: boolean[][]): { out: Mat; probs: Mat[] } {
  const pos = x.map((_, t) => t);
  const g = cfg.heads / cfg.hq;
  const q = addBias(matmul(x, w.wq), w.bq);
  const k = addBias(matmul(x, w.wk), w.bk);
  const c = addBias(matmul(x, w.wc), w.bc);
  const gate = addBias(matmul(x, w.wg), w.bg).map((row) => row.map((z) => 1 / (1 + Math.exp(-z))));
  const d = w.wo[0].length;
  const out: Mat = x.map(() => new Array<number>(d).fill(0));
  const probs: Mat[] = [];
  for (let grp = 0; grp < cfg.hq; grp++) {
    const kh = Math.floor((grp * cfg.hk) / cfg.hq);
    const ch = Math.floor((grp * cfg.hc) / cfg.hq);
    const qg = rope(cols(q, grp * cfg.dh, (grp + 1) * cfg.dh), pos, cfg.base);
    const kg = rope(cols(k, kh * cfg.dh, (kh + 1) * cfg.dh), pos, cfg.base);
    const cg = cols(c, ch * cfg.dl, (ch + 1) * cfg.dl);
    const { out: latent, probs: p } = attendHead(qg, kg, cg, 1 / Math.sqrt(cfg.dh), allowed); // [T, Dl]
    probs.push(p);
    for (let j = 0; j < g; j++) {
      const head = grp * g + j;
      // W_P,i [Dl, Dh] = E_j + Delta_g[:, j*Dh:(j+1)*Dh]
      const start = (j * cfg.dh) % cfg.dl;
      const wp: Mat = Array.from({ length: cfg.dl }, (_, a) =>
        Array.from({ length: cfg.dh }, (_, bcol) => (a === start + bcol ? 1 : 0) + w.delta[grp][a][j * cfg.dh + bcol]),
      );
      const vi = matmul(latent, wp); // [T, Dh]
      const gated = vi.map((row, t) => row.map((z, bcol) => z * gate[t][head * cfg.dh + bcol]));
      const contrib = matmul(gated, w.wo.slice(head * cfg.dh, (head + 1) * cfg.dh)); // [T, D]
      for (let t = 0; t < out.length; t++) for (let o = 0; o < d; o++) out[t][o] += contrib[t][o];
    }
  }
  return { out, probs };
}

export interface MlaWeights {
  wq: Mat; // [D, H*Dqk]
  wkva: Mat; // [D, Dc+Dr]
  kvNorm: number[]; // [Dc]
  wkvb: Mat; // [Dc, H*(Dn+Dv)]
  wo: Mat; // [H*Dv, D]
}

/** Naive MLA without query compression on one sequence. */
export function mlaReference(
  x: Mat,
  w: MlaWeights,
  cfg: { h: number; dc: number; dn: number; dr: number; dv: number; eps: number; base?: number },
  allowed: boolean[][],
): { out: Mat } {
  const pos = x.map((_, t) => t);
  const dqk = cfg.dn + cfg.dr;
  const q = matmul(x, w.wq);
  const a = matmul(x, w.wkva);
  const latent = cols(a, 0, cfg.dc).map((row) => {
    const ms = row.reduce((s, v) => s + v * v, 0) / row.length;
    return row.map((v, j) => (v / Math.sqrt(ms + cfg.eps)) * w.kvNorm[j]);
  });
  const kRope = rope(cols(a, cfg.dc, cfg.dc + cfg.dr), pos, cfg.base);
  const kv = matmul(latent, w.wkvb);
  const heads: Mat[] = [];
  for (let i = 0; i < cfg.h; i++) {
    const qi = cols(q, i * dqk, (i + 1) * dqk);
    const qFull = qi.map((row, t) => [...row.slice(0, cfg.dn), ...rope([row.slice(cfg.dn)], [pos[t]], cfg.base)[0]]);
    const base = i * (cfg.dn + cfg.dv);
    const kFull = kv.map((row, s) => [...row.slice(base, base + cfg.dn), ...kRope[s]]);
    const vi = cols(kv, base + cfg.dn, base + cfg.dn + cfg.dv);
    heads.push(attendHead(qFull, kFull, vi, 1 / Math.sqrt(dqk), allowed).out);
  }
  const merged = x.map((_, t) => heads.flatMap((hd) => hd[t]));
  return { out: matmul(merged, w.wo) };
}

/** Nested array of a tensor-shaped flat buffer. */
export function toMat(data: ArrayLike<number>, rows: number, cols_: number, offset = 0): Mat {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols_ }, (_, c) => data[offset + r * cols_ + c]));
}

export { transpose };
