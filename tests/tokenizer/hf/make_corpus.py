#!/usr/bin/python3
"""Writes the tokenizer test corpus (about 6 MB, deterministic) into OUT_DIR, one file per kind.

    make_corpus.py OUT_DIR

Kinds: English prose (the King James Bible from Debian's bible-kjv), source code in several
languages (from /usr/include and Python's standard library), Chinese and Japanese, digit runs,
emoji with joiners, whitespace runs with tabs and CRLF, DeepSeek special-token strings and
near misses, combining marks and right-to-left scripts, and invalid UTF-8 bytes (that file can
only be checked for an exact round trip: a JavaScript string cannot hold invalid bytes)."""

import glob
import os
import random
import subprocess
import sys


def kjv():
    text = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    assert len(text) > 4_000_000, "the KJV text is incomplete: is Debian's bible-kjv installed?"
    return text


def code(rng):
    files = sorted(glob.glob("/usr/include/*.h") + glob.glob("/usr/include/c++/12/bits/*.h") +
                   glob.glob("/usr/lib/python3.11/*.py") + glob.glob("/usr/share/perl/5.36/*.pm") +
                   glob.glob("/usr/share/bash-completion/completions/*"))
    rng.shuffle(files)
    out, size = [], 0
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        out.append(text)
        size += len(text.encode())
        if size > 1_200_000:
            break
    return "".join(out)


def cjk(rng):
    hanzi = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现"
    kana = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"
    punctuation = "，。、！？：；「」『』（）《》…—"
    lines = []
    for _ in range(12000):
        words = []
        for _ in range(rng.randint(3, 12)):
            pool = hanzi if rng.random() < 0.6 else kana
            words.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
            if rng.random() < 0.1:
                words.append(rng.choice(["AI", "DeepSeek", "2024年", "3.14", "GPU", " ", "\u3000"]))
        lines.append(rng.choice(punctuation).join(words) + rng.choice("。！？"))
    return "\n".join(lines) + "\n"


def digits(rng):
    parts = []
    for _ in range(40000):
        kind = rng.randrange(6)
        if kind == 0:
            parts.append(str(rng.randrange(10 ** rng.randint(1, 30))))
        elif kind == 1:
            parts.append("%d-%02d-%02d" % (rng.randint(1000, 2100), rng.randint(1, 12), rng.randint(1, 28)))
        elif kind == 2:
            parts.append("%.*f" % (rng.randint(1, 8), rng.uniform(-1e6, 1e6)))
        elif kind == 3:
            parts.append("".join(rng.choice("٠١٢٣٤٥٦٧٨٩०१२३४५६७८९①②③½¾²³") for _ in range(rng.randint(1, 9))))
        elif kind == 4:
            parts.append("v%d.%d.%d" % (rng.randint(0, 20), rng.randint(0, 99), rng.randint(0, 999)))
        else:
            parts.append("0x%x" % rng.getrandbits(64))
        parts.append(rng.choice([" ", ", ", "\n", "", "\t", "; "]))
    return "".join(parts)


def emoji(rng):
    pieces = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "❤️", "🇺🇸", "🇯🇵", "🧑‍💻", "😀", "🤖", "✨", "☕", "👩🏿‍🔬",
              "1️⃣", "#️⃣", "🫠", "\u200d", "\ufe0f", "✌︎"]
    words = ["hello", "world", "ok", "done", "party", "code"]
    out = []
    for _ in range(60000):
        out.append(rng.choice(pieces) if rng.random() < 0.6 else rng.choice(words))
        out.append(rng.choice(["", " ", "  ", "\n"]))
    return "".join(out)


def whitespace(rng):
    pieces = [" ", "  ", "    ", "\t", "\t\t", "\r\n", "\n", "\n\n", "\r", " \n", "\u00a0", "\u3000", "\u2003",
              "\u0085", "\u2028", "\v", "\f", "x", "word", "a.b", "if (x) {", "}", "  - item", "#"]
    return "".join(rng.choice(pieces) for _ in range(150000))


def special_tokens(rng):
    specials = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜▁pad▁｜>",
                "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜tool▁sep｜>", "<｜tool▁calls▁begin｜>"]
    near_misses = ["<｜User|>", "<|User|>", "<｜User｜", "｜User｜>", "<｜Assistant｜ >", "<<｜User｜>>", "< ｜User｜>"]
    words = ["Hello", " there", "\n", " 42", " 你好", "!"]
    out = []
    for _ in range(40000):
        r = rng.random()
        out.append(rng.choice(specials) if r < 0.3 else rng.choice(near_misses) if r < 0.45 else rng.choice(words))
    return "".join(out)


def scripts(rng):
    samples = ["e\u0301", "n\u0303", "\u0915\u094d\u0937", "각", "שָׁלוֹם", "مرحبا بالعالم", "Ελληνικά", "русский текст",
               "ﬁ", "Å", "\u1e9b\u0323", "z\u0351\u0354\u0300", "ไทย", "한국어", "Türkçe İı", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0001d400"]
    return "".join(rng.choice(samples) + rng.choice([" ", "", "\n", ", "]) for _ in range(80000))


def invalid_utf8(rng):
    valid = "valid text ü 中 🎉 ".encode()
    bad = [b"\x80", b"\xbf", b"\xc3", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xff", b"\xfe",
           b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00"]
    return b"".join(rng.choice(bad) if rng.random() < 0.3 else valid for _ in range(20000))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(1234)
    kinds = {"kjv": kjv(), "code": code(rng), "cjk": cjk(rng), "digits": digits(rng), "emoji": emoji(rng),
             "whitespace": whitespace(rng), "special_tokens": special_tokens(rng), "scripts": scripts(rng)}
    total = 0
    for name, text in kinds.items():
        data = text.encode("utf-8")
        total += len(data)
        with open(os.path.join(out_dir, name + ".txt"), "wb") as f:
            f.write(data)
    data = invalid_utf8(rng)
    total += len(data)
    with open(os.path.join(out_dir, "invalid_utf8.bin"), "wb") as f:
        f.write(data)
    print("corpus: %.1f MB in %s" % (total / 1e6, out_dir))


if __name__ == "__main__":
    main()
