// Generates tests/data/tokenizer_cases.txt: a corpus of texts with the ids Hugging Face's
// tokenizers produce for them (Phi-3 tokenizer.json, add_special_tokens=false) and the text
// HF's decode(ids, skip_special_tokens=true) gives back. Reference: the npm package
// @huggingface/tokenizers (JS port). If the npm package `tokenizers` (the Rust library's Node
// binding) can be loaded too, every case is cross-checked against it and differences reported.
// If Debian's spm_encode is installed, single-line cases also get the ids plain SentencePiece
// gives with tokenizer.model ("spm" lines; it knows no added tokens).
//
// Usage (Node 18+), from the repository root:
//   mkdir -p /tmp/tokref && (cd /tmp/tokref && npm install @huggingface/tokenizers tokenizers)
//   TOKREF=/tmp/tokref node scripts/gen_tokenizer_cases.mjs
// Writes tests/data/tokenizer_cases.txt and tests/data/tokenizer-features/ (see the end).
// Env: TOKREF (folder whose node_modules has the packages), PHI_DATA (default ../shared/data).
import fs from "fs";
import path from "path";
import { createRequire } from "module";
import { execFileSync } from "child_process";

const data = process.env.PHI_DATA || "../shared/data";
const dir = path.join(data, "phi3-tokenizer/phi-3-mini");
const spmModel = path.join(data, "llama2c-tokenizer/tokenizer.model");
const spm512Model = path.join(data, "tok512-tinystories/tok512.model");
const req = createRequire(path.join(path.resolve(process.env.TOKREF || "."), "index.js"));

const { Tokenizer } = req("@huggingface/tokenizers");
const pkgJson = (name) => {
  // the package's "exports" hides package.json: find it next to the resolved entry point
  let d = path.dirname(req.resolve(name));
  while (!fs.existsSync(path.join(d, "package.json"))) d = path.dirname(d);
  return JSON.parse(fs.readFileSync(path.join(d, "package.json"), "utf8"));
};
const jsVersion = pkgJson("@huggingface/tokenizers").version;
const tokJson = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tokCfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
const js = new Tokenizer(tokJson, tokCfg);

let rs = null;
try {
  rs = req("tokenizers").Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
} catch (e) {
  process.stderr.write(`note: Rust binding 'tokenizers' not available (${e.message.split("\n")[0]})\n`);
}
let haveSpm = false;
try {
  execFileSync("spm_encode", ["--help"], { stdio: "ignore" });
  haveSpm = fs.existsSync(spmModel);
} catch (e) {
  process.stderr.write("note: spm_encode not available, no spm lines\n");
}

// ---- the corpus ----
const cases = [];
const add = (cat, ...texts) => texts.forEach((t) => cases.push([cat, t]));

add("english",
  "Hello world", " Hello world", "Hello World!", "hello, world.", "The quick brown fox jumps over the lazy dog.",
  "I can't believe it's already 5 o'clock!", "She said: \"Don't go there.\"", "What's up? Nothing much...",
  "Mr. Smith paid $1,234.56 for 3 items on 2024-05-06.", "e-mail me at someone@example.com or visit https://example.org/a?b=c",
  "UPPERCASE lowercase MiXeD CaSe", "It was the best of times, it was the worst of times.", "antidisestablishmentarianism",
  "Supercalifragilisticexpialidocious!", "1 2 3 4 5 6 7 8 9 10", "3.14159265358979", "1,000,000", "100%", "#hashtag @mention",
  "(parentheses) [brackets] {braces} <angles>", "a", "I", "ok", "x y z", "Well -- I suppose; maybe: yes!",
  "The year 1999 ended; 2000 began.", "Dr. Jekyll & Mr. Hyde", "rock'n'roll", "don't won't can't shouldn't",
  "ALL CAPS SENTENCE WITH NUMBERS 42", "Title Case Is Used Here", "semi;colon:colon,comma.period",
  "A sentence with trailing spaces   ", "end.", "Q: What is 2+2?\nA: 4.", "first line\nsecond line\nthird line",
  "Lists:\n- one\n- two\n- three", "1. First\n2. Second\n3. Third", "**bold** _italic_ `code` ~~strike~~",
  "# Heading\n\nSome paragraph text.\n\n## Subheading", "> quoted text\n> more quote");

add("code",
  "int main(void) {\n    printf(\"hello\\n\");\n    return 0;\n}",
  "def f(x):\n\treturn x * 2\n", "for (int i = 0; i < n; i++) { sum += a[i]; }",
  "const add = (a, b) => a + b;", "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)",
  "{\"key\": \"value\", \"n\": [1, 2, 3], \"ok\": true}", "SELECT * FROM users WHERE id = 42;",
  "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))", "<html><body><p class=\"x\">Hi</p></body></html>",
  "git commit -m \"fix: handle empty input\" && git push", "ls -la | grep '\\.c$' | wc -l", "x += 1; y -= 2; z *= 3; w /= 4;",
  "if (a && b || !c) { return; }", "fn main() { println!(\"{}\", 1 + 1); }", "    indented with four spaces",
  "\t\ttwo tabs", "\tmixed \t tabs  and   spaces", "a=b==c!=d<=e>=f", "arr[0][1]->next->val", "// comment\n/* block */",
  "#!/bin/sh\nset -eu\necho \"$HOME\"", "key: value\nlist:\n  - a\n  - b", "<?xml version=\"1.0\"?>", "0x1F 0b1010 0o17 1e-9",
  "snake_case camelCase PascalCase kebab-case SCREAMING_CASE", "std::vector<std::string> v;", "@decorator\nclass A(B):\n    pass",
  "lambda x: x**2", "printf(\"%d %s %.3f\\n\", i, s, f);", "while True:\n    pass\n\n\n", "return a ? b : c;");

add("multilingual",
  "Bonjour, comment ça va ?", "Größe, Maß, Übermut und Äpfel", "¿Dónde está la biblioteca?", "Ação, coração, pão",
  "Perché è così difficile?", "Zażółć gęślą jaźń", "Příliš žluťoučký kůň úpěl ďábelské ódy", "Şu çalışkan öğrenciler",
  "Tiếng Việt có dấu thanh", "Привет, как дела?", "Слава Україні! Їжак і ґава", "Здравей, свят", "Γειά σου Κόσμε",
  "Բարեւ աշխարհ", "გამარჯობა მსოფლიო", "שלום עולם", "مرحبا بالعالم", "سلام دنیا", "ہیلو دنیا", "नमस्ते दुनिया",
  "হ্যালো বিশ্ব", "வணக்கம் உலகம்", "హలో ప్రపంచం", "ಹಲೋ ವರ್ಲ್ಡ್", "ഹലോ വേൾഡ്", "สวัสดีชาวโลก", "ສະບາຍດີ",
  "សួស្តី​ពិភពលោក", "မင်္ဂလာပါ", "བཀྲ་ཤིས་བདེ་ལེགས།", "你好，世界！", "這是繁體中文。", "こんにちは世界、カタカナとひらがな",
  "안녕하세요 세계", "Сайн байна уу", "ሰላም ልዑል", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "ᐊᐃᖓᐃ", "ආයුබෝවන්", "નમસ્તે", "ਸਤ ਸ੍ਰੀ ਅਕਾਲ",
  "ଓଡ଼ିଆ", "Ελληνικά: αβγδεζηθ", "Ёжик в тумане", "Iñtërnâtiônàlizætiøn", "Ærøskøbing på Ærø", "Þórður og Ðóra",
  "Cửa Việt", "Äpfel", "我想在apple工作1314151天～", "日本語のテキストです。漢字、ひらがな、カタカナ。", "한국어 문장입니다.",
  "Español: ñandú, pingüino", "Română: ăâîșț", "Magyar: őű", "Lietuvių: ąčęėįšųūž", "Latviešu: āčēģīķļņšūž",
  "Eesti: õäöü", "Hrvatski: čćđšž", "Slovenčina: ľĺŕ", "العربية مع أرقام ١٢٣", "עברית עם ניקוד: שָׁלוֹם",
  "Mixed English and 中文 and русский", "ꦲꦤꦕꦫꦏ", "ᠮᠣᠩᠭᠣᠯ", "Ⲙⲉⲧⲣⲉⲙⲛ̀ⲭⲏⲙⲓ", "𐌰𐍄𐌰 𐌿𐌽𐍃𐌰𐍂", "𓀀𓀁𓀂");

add("emoji",
  "😀", "😀😃😄😁", "I ❤️ NY", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇺🇸🇫🇷🇯🇵", "1️⃣ 2️⃣ #️⃣",
  "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)", "this is 🦙.cpp",
  "Hello, y'all! How are you 😁 ?", "🧑🏿‍💻 coder", "☕️ coffee ☀️ sun", "🤖🤖🤖", "emoji at end 🎉",
  "🎉 emoji at start", "text😀text", "©®™", "←↑→↓ ⇐⇒", "♠♣♥♦ ★☆");

const ws = [];
for (let n = 1; n <= 12; n++) ws.push(" ".repeat(n));
ws.push(" ".repeat(16), " ".repeat(17), " ".repeat(31), " ".repeat(64));
add("whitespace", ...ws,
  "\t", "\t\t", "\t\t\t\t", "\n", "\n\n", "\n\n\n", "\n\n\n\n\n\n", "\r\n", "\r\n\r\n", "\r", "\t\n", " \n ", "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n",
  "  Hello", "   Hello", "    Hello", "    Hello\n    Hello", " (", "\n =", "' era", "a  b", "a   b", "a\tb", "a\nb", "a \n b",
  "word    word", "trailing \t", "\u00a0nbsp\u00a0", "ideographic\u3000space", "en\u2002space em\u2003space", "\u200bzero\u200bwidth",
  "line\u2028separator", "\v\f", "  \t  \n  \t  ", " leading", "  two leading", "trailing ");

const chat = (role, s) => `<|${role}|>\n${s}<|end|>\n`;
add("special",
  "<|user|>\nHi<|end|>\n<|assistant|>", "<|user|>\nHi<|end|>\n<|assistant|>\n", chat("system", "You are helpful.") + chat("user", "Hello!") + "<|assistant|>\n",
  chat("user", "What is 2+2?") + chat("assistant", "4") + "<|endoftext|>", "<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>",
  "<|system|>", "<|placeholder1|><|placeholder2|><|placeholder3|>", "<|placeholder4|> <|placeholder5|>  <|placeholder6|>",
  "<s>", "</s>", "<unk>", "<s>Hello</s>", "<s> Hello </s> world", "a  <|end|>  b", "a<|end|>b", "a <|end|> b", "text<|end|>",
  "<|end|>text", "<|end|> text", "<|end|>\n\ntext", "<|end|>\t\n \ttext", " <|end|>", "  <|user|>", "\n<|user|>", "x\n<|end|>",
  "<|end|><|end|><|end|>", "<|end|> <|end|>", "<|user", "<|user|", "user|>", "<|unknown|>", "<|END|>", "< |end| >", "<<|end|>>",
  "<|endoftext|><|endoftext|>", "Hello<|endoftext|>World", "<|user|>\n<|end|>\n", "<|assistant|>\n   indented answer<|end|>",
  "<s><s></s></s>", "<unk><unk>", "</s> after", "<|user|>\u3000ideographic", "<|user|>\u00a0nbsp", "end with rstrip token<|user|>   ");

add("edge",
  "", "a", "  ", "\u0000", "nul\u0000inside", "\u0001\u0002\u0003\u001f", "\u007f", "\u0080\u0085\u009f", "\ufffd", "\uffff",
  "\u{10ffff}", "\u{e000}", "e\u0301\u0302\u0303 combining", "\u200e\u200f\u202a\u202c bidi", "\ufeffBOM", "a".repeat(300),
  "ab".repeat(200), "abc ".repeat(100), "!!!!!!", "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333",
  "333333333", "w048 7tuijk dsdfhu", "ied 4 ½ months", " discards", "0123456789", "9".repeat(50), "_".repeat(40), "-".repeat(80),
  "=".repeat(33), ".".repeat(20), "▁", "▁▁▁", "▁hello", "a▁b", "<0x41>", "<0x0A>", "ÿ", "\u00ad soft hyphen");

// Seeded random strings over a mixed alphabet (xorshift32, deterministic).
let seed = 0x12345678;
const rnd = (n) => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
};
const pools = [
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n", ".,;:!?'\"()[]{}<>|/\\-_=+*&^%$#@~`",
  "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœ", "абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "αβγδεζηθικλμνξοπρστυφχψω", "的一是不了人我在有他这中大来上国个到说们",
  "あいうえおかきくけこアイウエオ", "가나다라마바사아자차카타파하", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "अआइईउऊएऐओऔकखगघ", "กขฃคฅฆงจฉชซฌญ",
  "😀😁😂🤣😃😄😅😆😉😊🚀🦙👍🏽❤️", "▁", "\u00a0\u3000\u2002\u200b\u200d\ufe0f",
];
const specials = ["<|user|>", "<|assistant|>", "<|end|>", "<|system|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<|placeholder3|>"];
for (let i = 0; i < 160; i++) {
  const len = 1 + rnd(i < 140 ? 40 : 400);
  const bias = rnd(pools.length);
  let s = "";
  for (let k = 0; k < len; k++) {
    if (rnd(40) === 0) { s += specials[rnd(specials.length)]; continue; }
    const pool = [...(rnd(3) ? pools[bias] : pools[rnd(pools.length)])];
    s += pool[rnd(pool.length)];
  }
  add("random", s);
}

// Long segments: BPE over thousands of chars in one piece (no pre-tokenizer).
const para = cases.filter(([c]) => c === "english" || c === "multilingual").map(([, t]) => t).join(" ");
add("long", para, para.repeat(3).replace(/ /g, "  "), (para + "\n").repeat(2) + "<|end|>" + para);

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
    else out += String.fromCharCode(c); // raw byte; the line is written as latin1 below
  }
  return out;
};

const spmIds = (texts, model) => {
  // One spm_encode run for all single-line cases (it encodes each input line separately).
  const input = texts.join("\n") + "\n";
  const out = execFileSync("spm_encode", [`--model=${model}`, "--output_format=id"], { input, maxBuffer: 1 << 26 });
  return out.toString("utf8").split("\n").slice(0, texts.length);
};

const lines = [];
lines.push(`# Tokenizer reference cases: phi-3-mini tokenizer.json, add_special_tokens=false.`);
lines.push(`# Made by scripts/gen_tokenizer_cases.mjs with @huggingface/tokenizers ${jsVersion}` +
  (rs ? " (cross-checked with the Rust binding 'tokenizers')" : "") + (haveSpm ? "; spm lines from spm_encode with llama2c tokenizer.model" : "") + ".");
lines.push(`# Per case: 'case CATEGORY TEXT', 'ids ...', 'dec TEXT' (decode, skip_special_tokens), optional 'spm ...' and`);
lines.push(`# 'spm512 ...' (spm_encode with tok512-tinystories/tok512.model) for single-line texts.`);
lines.push(`# TEXT escapes: \\\\ \\n \\t \\r \\xHH (control bytes, and spaces at either end); other bytes raw UTF-8.`);

const spmOk = (t) => haveSpm && t.length > 0 && !/[\n\r]/.test(t);
const spmTexts = cases.filter(([, t]) => spmOk(t)).map(([, t]) => t);
const spmOut = haveSpm ? spmIds(spmTexts, spmModel) : [];
const spm512Out = haveSpm && fs.existsSync(spm512Model) ? spmIds(spmTexts, spm512Model) : null;
let spmI = 0, rsDiff = 0;
for (const [cat, text] of cases) {
  const ids = js.encode(text, { add_special_tokens: false }).ids;
  const dec = ids.length ? js.decode(ids, { skip_special_tokens: true }) : "";
  if (rs) {
    const r = await rs.encode(text, null, { addSpecialTokens: false });
    const rids = r.getIds();
    const rdec = rids.length ? await rs.decode(rids, true) : "";
    if (JSON.stringify(rids) !== JSON.stringify(ids) || rdec !== dec) {
      rsDiff++;
      process.stderr.write(`JS/Rust differ on ${JSON.stringify(text).slice(0, 80)}: js ${ids.slice(0, 20)} rust ${rids.slice(0, 20)}\n`);
    }
  }
  lines.push(`case ${cat} ${esc(text)}`);
  lines.push(`ids ${ids.join(" ")}`.trimEnd());
  lines.push(`dec ${esc(dec)}`);
  if (spmOk(text)) {
    lines.push(`spm ${spmOut[spmI].trim()}`.trimEnd());
    if (spm512Out) lines.push(`spm512 ${spm512Out[spmI].trim()}`.trimEnd());
    spmI++;
  }
}
fs.writeFileSync("tests/data/tokenizer_cases.txt", Buffer.from(lines.join("\n") + "\n", "latin1"));
process.stderr.write(`tests/data/tokenizer_cases.txt: ${cases.length} cases` + (rs ? `, ${rsDiff} JS/Rust differences` : "") + "\n");

// ---- feature tokenizers: small hand-made tokenizer.json files exercising what Phi-3's does
// not (lstrip, single_word, normalized added tokens, unk without byte fallback, Metaspace) ----
const featVocab = { "<unk>": 0, "<s>": 1, "</s>": 2 };
for (let b = 0; b < 256; b++) featVocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
const addPiece = (p) => { if (!(p in featVocab)) featVocab[p] = Object.keys(featVocab).length; };
for (const c of "\u2581abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'<>|/[]-_:;()") addPiece(c);
const featMerges = [];
const addWord = (w) => {
  // progressive merges: first two chars, then one char at a time
  const ch = [...w];
  let left = ch[0];
  for (let k = 1; k < ch.length; k++) {
    const m = `${left} ${ch[k]}`;
    addPiece(left + ch[k]);
    if (!featMerges.includes(m)) featMerges.push(m);
    left += ch[k];
  }
};
for (const w of ["\u2581the", "\u2581hello", "hello", "\u2581world", "ing", "\u2581yes", "yes", "ll", "\u2581\u2581", "\u2581\u2581\u2581\u2581", "ma", "ask", "\u2581good"])
  addWord(w);
// merges whose results have other splits too (HF must pick by rank, not by result)
for (const m of ["e ll", "he ll", "h ell"]) {
  const [a, b] = m.split(" ");
  addPiece(a + b);
  if (!featMerges.includes(m)) featMerges.push(m);
}
let nextId = Object.keys(featVocab).length;
const added = (content, o = {}) => ({
  id: content in featVocab ? featVocab[content] : nextId++, content, single_word: !!o.single_word, lstrip: !!o.lstrip,
  rstrip: !!o.rstrip, normalized: !!o.normalized, special: !!o.special,
});
const featAdded = [
  added("<unk>", { special: true }), added("<s>", { special: true }), added("</s>", { special: true }),
  added("<mask>", { lstrip: true, special: true }), added("<sep>", { lstrip: true, rstrip: true, special: true }),
  added("<m", { special: true }), added("[WORD]", { single_word: true }), added("yes", { normalized: true }),
  added("good day", { normalized: true }), added("<extra>", {}), added("\u00ab\u00bb", { lstrip: true, special: true }),
  added("end", { single_word: true, rstrip: true }),
];
const featTokenizer = (variant) => ({
  version: "1.0", truncation: null, padding: null, added_tokens: featAdded,
  normalizer: variant === "metaspace" ? null : { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
  pre_tokenizer: variant === "metaspace" ? { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false } : null,
  post_processor: null,
  decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
  model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: variant !== "unk", vocab: featVocab, merges: featMerges },
});
const featTexts = [
  "hello world", " hello", "the yes", "yes", "yesterday", "say yes!", "good day to you", "a good day", "gooddayyes",
  "x <mask> y", "x   <mask>", "<mask>", "  <mask>  ", "x<mask>", "a<sep>b", "a  <sep>  b", " <sep> ", "<sep><sep>", "<m<mask>",
  "<mas", "<ma", "[WORD]", "a [WORD] b", "a[WORD]b", "[WORD]x", "x[WORD]", "([WORD])", "_[WORD]_", "\u00e9[WORD]", "[WORD] [WORD]",
  "the end", "the end   x", "ending", "end", "endend", "end end", "x end.", "<extra>", "a<extra>b", "\u00ab\u00bb", "q  \u00ab\u00bb", "\t\u00ab\u00bb",
  "\u00e9\u00e8 \u00fc", "caf\u00e9 \u4e2d\u6587 \ud83d\ude00", "helllo", "hell", "shell", "hello hello hello", "<s>hello</s>", "<unk>",
  "   ", "", "x", "  two", "\n<mask>\n", "yes <mask> yes", "good  day", "ring king", "\u2581hello", "unknown \u00ff chars \u20ac\u20ac here",
];
const featDir = "tests/data/tokenizer-features";
const featLines = [`# Cases for the feature tokenizers in ${featDir}/*/tokenizer.json, made by scripts/gen_tokenizer_cases.mjs.`,
  `# Reference: ${rs ? "the Rust library via the npm binding 'tokenizers'" : "@huggingface/tokenizers " + jsVersion}. Format as in tokenizer_cases.txt; category = variant.`];
let featDiff = 0;
for (const variant of ["prepend", "unk", "metaspace"]) {
  fs.mkdirSync(`${featDir}/${variant}`, { recursive: true });
  const file = `${featDir}/${variant}/tokenizer.json`;
  fs.writeFileSync(file, JSON.stringify(featTokenizer(variant), null, 1) + "\n");
  const fjs = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), {});
  const frs = rs ? req("tokenizers").Tokenizer.fromFile(file) : null;
  for (const text of featTexts) {
    let ids = fjs.encode(text, { add_special_tokens: false }).ids;
    let dec = ids.length ? fjs.decode(ids, { skip_special_tokens: true }) : "";
    if (frs) {
      const rids = (await frs.encode(text, null, { addSpecialTokens: false })).getIds();
      const rdec = rids.length ? await frs.decode(rids, true) : "";
      if (JSON.stringify(rids) !== JSON.stringify(ids) || rdec !== dec) {
        featDiff++;
        process.stderr.write(`feature ${variant}: JS/Rust differ on ${JSON.stringify(text)}: js ${ids} / ${JSON.stringify(dec)}, rust ${rids} / ${JSON.stringify(rdec)}\n`);
      }
      ids = rids; // the Rust library is the reference where they differ
      dec = rdec;
    }
    featLines.push(`case ${variant} ${esc(text)}`, `ids ${ids.join(" ")}`.trimEnd(), `dec ${esc(dec)}`);
  }
}
fs.writeFileSync(`${featDir}/cases.txt`, Buffer.from(featLines.join("\n") + "\n", "latin1"));
process.stderr.write(`${featDir}: ${3 * featTexts.length} cases` + (rs ? `, ${featDiff} JS/Rust differences` : "") + "\n");
