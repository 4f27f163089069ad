// Generates the byte-level BPE test data in tests/data/bytelevel/ (tests/test_bytelevel.c):
//  - tokenizer.json: a small byte-level BPE (GPT-2 byte mapping, the o200k Split pre-tokenizer
//    Phi-4-mini uses, Phi-4-style added tokens) whose merges are trained here, by plain BPE on
//    a corpus written in this script, plus a few whole words that no merge builds;
//    ignore-merges/tokenizer.json is the same model with ignore_merges set and merges written
//    as "a b" strings;
//  - tokenizer_config.json: a chat template and bos/eos for the import test;
//  - cases.txt: texts with their pre-tokenizer split, ids for both tokenizers, and decodes,
//    plus decode-only id sequences (partial UTF-8, special tokens in between...).
// References: splits from Node's own regex engine running the o200k pattern, cross-checked
// with Hugging Face's Rust library (Oniguruma) through the npm binding 'tokenizers'; ids and
// decodes from @huggingface/tokenizers (the JS port), cross-checked with the Rust binding. Where
// the two disagree the Rust library (what transformers runs) is recorded and the case listed:
// the JS port 0.2.0 folds case in (?i:...) for ASCII only ("it'\u017F" splits differently) and
// prints added tokens as they are, where the Rust library sends them through the ByteLevel
// decoder too ("<|café|>" decodes to "<|caf\uFFFD|>": é stands for the lone byte 0xE9).
// Node 20's regex engine lacks (?i:...) groups and its \s differs from Oniguruma's (it has
// U+FEFF, lacks U+0085), so the pattern is run with (?i:'s|...) spelled out with Unicode case
// folding ('s also matches U+017F) and \s, \S as \p{White_Space}, \P{White_Space}.
//
// Usage (Node 18+), from the repository root:
//   mkdir -p /tmp/tokref && (cd /tmp/tokref && npm install @huggingface/tokenizers tokenizers)
//   TOKREF=/tmp/tokref node scripts/gen_bytelevel_cases.mjs
import fs from "fs";
import path from "path";
import { createRequire } from "module";

const req = createRequire(path.join(path.resolve(process.env.TOKREF || "."), "index.js"));
const { Tokenizer } = req("@huggingface/tokenizers");
let rs = null;
try {
  rs = req("tokenizers");
} catch (e) {
  process.stderr.write(`note: Rust binding 'tokenizers' not available (${e.message.split("\n")[0]})\n`);
}
const pkgVersion = (name) => {
  let d = path.dirname(req.resolve(name));
  while (!fs.existsSync(path.join(d, "package.json"))) d = path.dirname(d);
  return JSON.parse(fs.readFileSync(path.join(d, "package.json"), "utf8")).version;
};
const outDir = "tests/data/bytelevel";

// ---- the pre-tokenizer ----
const O200K = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const nodeRe = new RegExp(
  O200K.replaceAll(String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)`, String.raw`(?:'[sS\u017F]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`)
    .replaceAll(String.raw`\s`, String.raw`\p{White_Space}`)
    .replaceAll(String.raw`\S`, String.raw`\P{White_Space}`),
  "gu");
const split = (text) => {
  const pieces = [...text.matchAll(nodeRe)].map((m) => m[0]);
  if (pieces.join("") !== text) throw new Error(`pattern does not tile ${JSON.stringify(text)}`);
  return pieces;
};
const rsSplitter = rs
  ? rs.Tokenizer.fromString(JSON.stringify({
    version: "1.0", added_tokens: [], normalizer: null, post_processor: null, decoder: null,
    pre_tokenizer: { type: "Split", pattern: { Regex: O200K }, behavior: "Isolated", invert: false },
    model: { type: "BPE", vocab: {}, merges: [] },
  })).getPreTokenizer()
  : null;

// GPT-2's byte -> printable char mapping.
const byteChar = [];
for (let b = 0, n = 0; b < 256; b++) {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  byteChar[b] = String.fromCodePoint(printable ? b : 256 + n++);
}
const toPieces = (s) => [...Buffer.from(s, "utf8")].map((b) => byteChar[b]).join("");

// ---- test texts (also the training corpus) ----
const cases = [];
const add = (cat, ...texts) => texts.forEach((t) => cases.push([cat, t]));

add("english",
  "Hello world", " Hello world", "Hello World!", "hello, world.", "The quick brown fox jumps over the lazy dog.",
  "I can't believe it's already five o'clock!", "She'll say you've done what we'd planned, and they're fine.",
  "I'm sure I'M SURE i'M sUrE", "IT'S HIS DOG'S BONE", "WE'LL SEE, YOU'LL SEE", "THEY'RE HERE AND WE'VE GONE", "I'D SAY",
  "it'S it'T it'RE it'VE it'M it'LL it'D", "don't DON'T Don'T dOn't", "rock'n'roll", "o'clock 'tis 'twas",
  "can't'nt'd", "the dog's' bone", "John's", "JOHN'S", "McDonald's", "Mc'Donald", "O'Neil O'NEIL", "' s", "'s", "'S", "'LL",
  "'ll 'LL 'Ll 'lL", "x'LL", "ABC'S", "abc'S", "Abc'Ll", "ABCdef", "abcDEF", "aBcDeF", "HTTPServer", "XMLHttpRequest",
  "iPhone iPad macOS", "CamelCaseWords andMoreCamels", "SCREAMING_SNAKE_CASE snake_case", "kebab-case-word",
  "Mr. Smith paid $1,234.56 for 3 items on 2024-05-06.", "e-mail someone@example.com or visit https://example.org/a/b?c=d",
  "It was the best of times, it was the worst of times.", "antidisestablishmentarianism", "A", "I", "a", "ok",
  "Title Case Is Used Here", "ALL CAPS SENTENCE", "Q: What is 2+2?\nA: 4.", "first line\nsecond line",
  "Supercalifragilisticexpialidocious!", "the the the the", "it'ſ long s", "ǅungla ǈudevit ǋ ǲ Title", "ʰʲʷ modifier ˈstress");

add("code",
  "int main(void) {\n    printf(\"hello\\n\");\n    return 0;\n}", "def f(x):\n\treturn x * 2\n",
  "for (int i = 0; i < n; i++) { sum += a[i]; }", "const add = (a, b) => a + b;", "x = np.zeros((3, 4), dtype=np.float32)",
  "{\"key\": \"value\", \"n\": [1, 2, 3]}", "SELECT * FROM users WHERE id = 42;", "#include <stdio.h>\n#define MAX 10",
  "<html><body><p class=\"x\">Hi</p></body></html>", "ls -la | grep '\\.c$' | wc -l", "path/to/file.txt and /usr/local/bin/",
  "a//b///c////", "http://a.b/c/", "// comment\n/* block */", "#!/bin/sh\nset -eu\n", "std::vector<std::string> v;",
  "if (a && b || !c) { return; }", "x += 1; y -= 2;", "a=b==c!=d<=e>=f", "0x1F 0b1010 1e-9 3.14f", "@decorator\nclass A(B):\n    pass",
  "fn main() { println!(\"{}\", 1 + 1); }", "    indented\n        more\n", "\t\ttabbed", "end;\r\nnext;\r\n");

add("cjk",
  "你好，世界！", "這是繁體中文。", "我想在apple工作1314151天～", "中文English混合mixed", "こんにちは世界、カタカナとひらがな",
  "日本語のテキストです。漢字、ひらがな、カタカナ。", "ラーメン　ー々〆", "안녕하세요 세계", "한국어 문장입니다.", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
  "「引用」『二重』【括弧】", "一二三四五六七八九十", "㊀㊁ ①②③ ⑴⑵");

add("rtl",
  "مرحبا بالعالم", "العربية مع أرقام ١٢٣٤٥", "سلام دنیا", "ہیلو دنیا", "שלום עולם", "עברית עם ניקוד: שָׁלוֹם",
  "English עם עברית mixed", "\u200fRTL mark\u200e", "كِتَابٌ مُفِيدٌ", "٣٫١٤ و ۱۲۳");

add("indic",
  "नमस्ते दुनिया", "हिन्दी में लिखा गया वाक्य।", "क्षत्रिय ज्ञान श्री", "अंग्रेज़ी", "ॐ नमः शिवाय", "१२३४ संख्या",
  "হ্যালো বিশ্ব", "வணக்கம் உலகம்", "ಹಲೋ ವರ್ಲ್ಡ್", "\u0901\u0902 marks first", " \u093f\u0915 sign before letter");

add("emoji",
  "😀", "😀😃😄😁", "I ❤️ NY", "👍🏽 thumbs", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇺🇸🇫🇷🇯🇵",
  "1️⃣ 2️⃣ #️⃣", "🧑🏿‍💻 coder", "👩🏽‍🤝‍👨🏻 pair", "text😀text", "emoji at end 🎉", "🎉 at start", "©®™", "☕️ ☀️", "🤖🤖🤖 robots");

const digits = [];
for (let n = 1; n <= 7; n++) digits.push("1234567".slice(0, n), "x" + "9".repeat(n) + "y", " " + "0".repeat(n));
add("digits", ...digits, "3.14159265358979", "1,000,000", "100%", "2024-05-06T12:34:56Z", "v1.2.3", "abc123def456",
  "½ ¼ ¾ ² ³", "Ⅻ ⅻ Ⅳ", "٣٤٥٦٧", "१२३४५६७", "１２３４５６７", "𝟙𝟚𝟛𝟜", "12ab34", "a1b2c3");

add("punct",
  "Hello!!! What??? Yes...", "(parentheses) [brackets] {braces} <angles>", "«quotes» „low“ ‘single’ “double”",
  "—em dash– en dash-hyphen", "semi;colon:colon,comma.period", "!@#$%^&*()_+-=", "...", " ...", " .\n", "..\r\n",
  ".\n\n", "./\n/", " ///", "a.b,c;d", "$100 €200 £300 ¥400", "¡Hola! ¿Qué?", "***bold*** __under__", "`code` ~~strike~~",
  "#hashtag @mention", ":-) ;-( :D", "~!@#$%^&*", "\u00ad soft\u00adhyphen", "a\u0301 e\u0301 combining after letter",
  "!\u0301 mark after punct", " \u0301 mark after space", "\u0301\u0302 marks alone");

const ws = [];
for (let n = 1; n <= 6; n++) ws.push(" ".repeat(n), "x" + " ".repeat(n) + "y", "x" + " ".repeat(n));
add("whitespace", ...ws,
  "\t", "\t\t", "a\tb", "a\t\tb", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "a\r\nb", "\r", "\r\r\n\n", " \n ", "  \n  ",
  "a \n b", "a  \n\n  b", "line\n    indented", "\t\n\t\n", "x \t \n \t y", "trailing \t", "trailing spaces   ", "  leading",
  " leading", "   three leading", "\u00a0nbsp\u00a0", "ideographic\u3000space", "en\u2002space em\u2003space", "\u200bzero\u200bwidth",
  "line\u2028sep\u2029para", "\v\f", "nel\u0085nel", "a\u0085\u0085b", "bom\ufeff\ufeffbom", "\u1680ogham", "a\u001c\u001db",
  "  \t  \n  \t  ", "\n \n\n \n\n\n \t \t\t \t\n  \n   \n", "end\n", "end \n", "end\n ");

// tokens added below (Phi-4-mini style: rstrip on the chat tokens) and some edge cases
add("special",
  "<|user|>\nHi<|end|>\n<|assistant|>", "<|system|>You are helpful.<|end|><|user|>Hello!<|end|><|assistant|>",
  "<|user|>  What is 2+2?<|end|>  \n<|assistant|>4<|end|><|endoftext|>", "<|endoftext|>", "<|end|>", "<|user|>",
  "<|end|>   text", "<|end|>\n\ntext", "a<|end|>b", "a <|end|> b", "text <|end|>", "  <|user|>", "<|end|><|end|>",
  "<|tool|>[{\"name\": \"f\"}]<|/tool|>", "<|tool_call|>x<|/tool_call|>", "<|user", "<|END|>", "<<|end|>>",
  "x <mask> y", "x   <mask>", "<mask>", "hello world", "say hello world!", "hellohello world", "<|tag|>", "<|café|>",
  "<|日本|>", "a<|café|>b", "<|endoftext|>Hello<|endoftext|>World");

add("edge",
  "", "a", " ", "\u0000", "nul\u0000inside", "\u0001\u0002\u0003", "\u007f\u0080\u009f", "\ufffd", "\uffff", "\u{10ffff}",
  "\u{e000}", "e\u0301\u0302\u0303", "a".repeat(300), "ab ".repeat(100), "Ġ Ċ ĉ", "ĠĠ", "<0x41>", "ÿþ", "ð\u009f\u0098\u0080",
  "\ud83d\ude00".repeat(20), "x\u{1F3FB}", "\u{1F3FB}\u{1F3FB}", "\u200d\u200d", "\ufe0f\ufe0f", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
  "Ⓐⓑⓒ", "ﬁ ﬂ ligatures", "ß ẞ", "İstanbul ı", "ΣΑΣ σας", "Ǆ ǅ ǆ");

// Seeded random strings over mixed alphabets (xorshift32, deterministic): split stress tests.
let seed = 0x2545f491;
const rnd = (n) => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
};
const pools = [
  "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r", ".,;:!?'\"()[]{}<>|/\\-_=+*&^%$#@~`",
  "'''sStTlLdDmMrReEvV", "àáâãäåæçèéêëßœÀÉÎÕÜ", "абвгдеёжзийАБВГД", "αβγδεζηθΣΩ", "的一是不了人我在有他这中大来",
  "あいうえおアイウエオー々", "가나다라마바사", "ابتثجحخدذ١٢٣", "שלוםעבר", "अआइकखग्ािीुँं१२", "ǅǈǋǲʰʲˆ",
  "\u0301\u0302\u0308\u093f\u0951\u20dd", "😀👍🏽❤️🇺🇸\u200d\ufe0f", "½²Ⅻ①", "\u00a0\u3000\u2002\u0085\u2028\u000b\u000c", "\u200b\ufeff\u00ad\u001c",
];
for (let i = 0; i < 150; i++) {
  const len = 1 + rnd(i < 130 ? 24 : 200);
  const bias = rnd(pools.length);
  let s = "";
  for (let k = 0; k < len; k++) {
    const pool = [...(rnd(3) ? pools[bias] : pools[rnd(pools.length)])];
    s += pool[rnd(pool.length)];
  }
  add("random", s);
}
const prose = cases.filter(([c]) => ["english", "cjk", "rtl", "indic", "code"].includes(c)).map(([, t]) => t).join(" ");
add("long", prose, (prose + "\n").repeat(3) + "<|end|>" + prose);

// ---- training: plain BPE on the corpus, most frequent pair first, ties by text ----
const N_MERGES = 700;
const trainingText = [
  cases.map(([, t]) => t).join("\n"),
  "Byte-level BPE starts from the 256 bytes and merges the most frequent adjacent pair, again and again. " +
  "The pre-tokenizer cuts text into words first, so merges never cross a word boundary. Words like the, and, " +
  "of, to, in, is, that, it, was, for, on, are, with, as, they, be, at, one, have, this, from, or, had, by, " +
  "word, but, what, some, we, can, out, other, were, all, there, when, up, use, your, how, said, each, she " +
  "appear often in English text, so they become single tokens early. Numbers such as 123, 2024 and 3.14 are " +
  "split into groups of three digits. Chinese 的 是 中文 and Japanese です ます and Korean 입니다 appear too.",
];
const wordCount = new Map();
for (const text of trainingText)
  for (const w of split(text)) wordCount.set(toPieces(w), (wordCount.get(toPieces(w)) || 0) + 1);
const words = [...wordCount].map(([w, c]) => ({ syms: [...w], c }));
const vocab = Object.create(null); // no prototype: a piece may be spelled "constructor"
for (let b = 0; b < 256; b++) vocab[byteChar[b]] = b;
let nextId = 256;
const merges = [];
for (let m = 0; m < N_MERGES; m++) {
  const counts = new Map();
  for (const { syms, c } of words)
    for (let i = 0; i + 1 < syms.length; i++) {
      const k = syms[i] + " " + syms[i + 1];
      counts.set(k, (counts.get(k) || 0) + c);
    }
  let best = null, bestCount = 1;
  for (const [k, c] of counts) if (c > bestCount || (c === bestCount && best !== null && k < best)) [best, bestCount] = [k, c];
  if (best === null) break;
  const [a, b] = best.split(" ");
  merges.push([a, b]);
  if (!(a + b in vocab)) vocab[a + b] = nextId++;
  for (const w of words) {
    const out = [];
    for (let i = 0; i < w.syms.length; i++) {
      if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) out.push(a + b), i++;
      else out.push(w.syms[i]);
    }
    w.syms = out;
  }
}

// Whole words that no merge sequence builds: only ignore_merges produces them. (Ids must be
// contiguous, added tokens last: the Rust library renumbers added tokens from the vocab size.)
for (const w of [" xylophone", "Hello", " quixotic", " café", "!!!", "'LL", " 中文English"])
  if (!(toPieces(w) in vocab)) vocab[toPieces(w)] = nextId++;

// Added tokens: Phi-4-mini's chat tokens (special, rstrip; the tool ones are not special), an
// lstrip token, a normalized one (matched after the identity normalizer) and two whose text
// is not all byte stand-ins.
const added = [];
const addToken = (content, o = {}) => added.push({
  id: nextId++, content, single_word: false, lstrip: !!o.lstrip, rstrip: !!o.rstrip,
  normalized: o.normalized ?? false, special: !!o.special,
});
addToken("<|endoftext|>", { special: true });
for (const r of ["assistant", "end", "user", "system"]) addToken(`<|${r}|>`, { special: true, rstrip: true });
for (const r of ["tool", "/tool", "tool_call", "/tool_call"]) addToken(`<|${r}|>`, { rstrip: true });
addToken("<|tag|>", { special: true, rstrip: true });
addToken("<mask>", { special: true, lstrip: true });
addToken("hello world", { normalized: true });
addToken("<|café|>");
addToken("<|日本|>");

const tokenizerJson = (ignoreMerges) => {
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: O200K }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges, vocab,
      merges: ignoreMerges ? merges.map(([a, b]) => `${a} ${b}`) : merges },
  };
};
const config = {
  add_bos_token: false, add_eos_token: false, clean_up_tokenization_spaces: false, bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>",
  chat_template: "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}",
};
fs.mkdirSync(`${outDir}/ignore-merges`, { recursive: true });
fs.writeFileSync(`${outDir}/tokenizer.json`, JSON.stringify(tokenizerJson(false), null, 1) + "\n");
fs.writeFileSync(`${outDir}/ignore-merges/tokenizer.json`, JSON.stringify(tokenizerJson(true), null, 1) + "\n");
fs.writeFileSync(`${outDir}/tokenizer_config.json`, JSON.stringify(config, null, 1) + "\n");

// ---- reference encodings ----
const esc = (s) => {
  const b = Buffer.from(s, "utf8");
  let out = "";
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    const edgeSpace = c === 0x20 && (i === 0 || i === b.length - 1);
    if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x0d) out += "\\r";
    else if (c < 0x20 || c === 0x7f || edgeSpace) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += String.fromCharCode(c); // raw byte; the file is written as latin1
  }
  return out;
};
const variants = ["", "ignore-merges/"].map((sub) => {
  const file = `${outDir}/${sub}tokenizer.json`;
  return {
    js: new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), config),
    rs: rs ? rs.Tokenizer.fromFile(file) : null,
  };
});
const diffs = [];
const ascii = (x) => JSON.stringify(x).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
const reference = async (v, text) => {
  let ids = v.js.encode(text, { add_special_tokens: false }).ids;
  let dec = ids.length ? v.js.decode(ids, { skip_special_tokens: true }) : "";
  if (v.rs) {
    const rids = (await v.rs.encode(text, null, { addSpecialTokens: false })).getIds();
    const rdec = rids.length ? await v.rs.decode(rids, true) : "";
    if (JSON.stringify(rids) !== JSON.stringify(ids) || rdec !== dec) {
      let i = 0, k = 0;
      while (i < ids.length && ids[i] === rids[i]) i++;
      while (k < dec.length && dec[k] === rdec[k]) k++;
      diffs.push(`encode ${ascii(text.slice(0, 40))}: from id ${i}: js ${ids.slice(i, i + 8)}, rust ${rids.slice(i, i + 8)}; ` +
        `decode from char ${k}: js ${ascii(dec.slice(k, k + 16))}, rust ${ascii(rdec.slice(k, k + 16))}`);
      [ids, dec] = [rids, rdec];
    }
  }
  return { ids, dec };
};
const lines = [
  `# Byte-level BPE reference cases for tests/data/bytelevel/{,ignore-merges/}tokenizer.json, made by scripts/gen_bytelevel_cases.mjs`,
  `# (Node ${process.version}, Unicode ${process.versions.unicode}; @huggingface/tokenizers ${pkgVersion("@huggingface/tokenizers")}` +
    (rs ? `, Rust binding tokenizers ${pkgVersion("tokenizers")}` : "") + "), add_special_tokens=false.",
  `# Per case: 'case CATEGORY TEXT', 'split N...' (byte lengths of the o200k pre-tokens), 'ids ...', 'ids2 ...' (ignore-merges),`,
  `# 'dec TEXT' (decode, skip_special_tokens). Decode-only: 'decode ID...' then 'dec TEXT'.`,
  `# TEXT escapes: \\\\ \\n \\t \\r \\xHH (control bytes, and spaces at either end); other bytes raw UTF-8.`,
];
let splitDiff = 0;
for (const [cat, text] of cases) {
  const pieces = split(text);
  if (rsSplitter) {
    const r = rsSplitter.preTokenizeString(text).map((x) => x[0]);
    if (JSON.stringify(r) !== JSON.stringify(pieces)) {
      splitDiff++;
      diffs.push(`split ${ascii(text.slice(0, 40))}: node ${ascii(pieces).slice(0, 80)}, rust ${ascii(r).slice(0, 80)}`);
    }
  }
  const a = await reference(variants[0], text), b = await reference(variants[1], text);
  if (a.dec !== b.dec) throw new Error(`variants decode differently: ${JSON.stringify(text)}`);
  lines.push(`case ${cat} ${esc(text)}`, `split ${pieces.map((p) => Buffer.byteLength(p)).join(" ")}`.trimEnd(),
    `ids ${a.ids.join(" ")}`.trimEnd(), `ids2 ${b.ids.join(" ")}`.trimEnd(), `dec ${esc(a.dec)}`);
}
// decode-only: single-byte pieces that cut characters, invalid bytes, tokens in between
const byteId = (b) => vocab[byteChar[b]];
const addedId = (c) => added.find((a) => a.content === c).id;
const decodeSeqs = [
  [0xc3, 0xa9].map(byteId), [byteId(0xc3)], [byteId(0xe2), byteId(0x82)], [byteId(0xe2), byteId(0x82), byteId(0x41)],
  [byteId(0xff), byteId(0xfe), byteId(0x41)], [byteId(0xc0), byteId(0x80)], [byteId(0xed), byteId(0xa0), byteId(0x80)],
  [byteId(0xf0), byteId(0x9f), byteId(0x98)], [byteId(0xf0), byteId(0x9f), byteId(0x98), byteId(0x80)], [byteId(0x80), byteId(0x80)],
  [byteId(0xc3), addedId("<|end|>"), byteId(0xa9)], [byteId(0xc3), addedId("<|tool|>"), byteId(0xa9)],
  [byteId(0xe4), byteId(0xb8), addedId("<|café|>"), byteId(0xad)], [addedId("<|日本|>"), byteId(0xe6)], [addedId("<mask>")],
  [addedId("hello world"), byteId(0x20), addedId("<|endoftext|>")],
];
for (let i = 0; i < 40; i++) { // random id runs over the whole vocabulary
  const n = 1 + rnd(12), seq = [];
  for (let k = 0; k < n; k++) seq.push(rnd(4) ? rnd(256) : rnd(nextId));
  decodeSeqs.push(seq);
}
for (const ids of decodeSeqs) {
  let dec = variants[0].js.decode(ids, { skip_special_tokens: true });
  if (variants[0].rs) {
    const rdec = await variants[0].rs.decode(ids, true);
    if (rdec !== dec) {
      diffs.push(`decode ${ids}: js ${ascii(dec)}, rust ${ascii(rdec)}`);
      dec = rdec;
    }
  }
  lines.push(`decode ${ids.join(" ")}`, `dec ${esc(dec)}`);
}
lines.splice(5, 0, `# JS/Rust differences (the Rust result is recorded): ${diffs.length}` + diffs.map((d) => `\n#   ${d}`).join("") +
  `\n# (the JS port folds case in (?i:...) for ASCII only, so it misses 'U+017F; it prints added tokens without the ByteLevel decoder)`);
fs.writeFileSync(`${outDir}/cases.txt`, Buffer.from(lines.join("\n") + "\n", "latin1"));
process.stderr.write(`${outDir}: ${Object.keys(vocab).length} vocab, ${merges.length} merges, ${cases.length} cases, ` +
  `${decodeSeqs.length} decode cases; ${splitDiff} split differences node/Rust, ${diffs.length} differences in all\n`);
for (const d of diffs) process.stderr.write(`  ${d}\n`);
