#!/usr/bin/env bash
#
# extract-torture-corpus.sh - rebuild the RFC 4475 and RFC 5118 SIP torture-test
# corpora from the archives that the RFCs themselves carry in Appendix A.
#
# The corpus is third-party data (IETF RFC content). It is NOT part of this
# repository and must never be committed; this script only knows how to
# recreate it, byte-exact, from the published RFC text files.
#
# Needs only bash and python3 (standard library). Run with no arguments for
# instructions.

set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
prog="scripts/$(basename "${BASH_SOURCE[0]}")"

usage() {
    cat <<EOF
$prog - recreate the SIP torture-test corpora from RFC 4475 / RFC 5118

The test corpora are third-party data and are not shipped with this repository.
Both RFCs embed their test messages, bit-exact, as a base64-encoded gzip'd tar
archive in Appendix A. This script decodes those archives.

HOW TO GET THE CORPUS
  1. Download the plain-text RFCs (the .txt form; not HTML or PDF):
       curl -fLO https://www.rfc-editor.org/rfc/rfc4475.txt
       curl -fLO https://www.rfc-editor.org/rfc/rfc5118.txt
     (Same files: https://www.ietf.org/rfc/rfc4475.txt and .../rfc5118.txt.
      Any way of saving those two pages as-is works; no network access is
      needed by this script itself.)
  2. Extract:
       $prog rfc4475.txt rfc5118.txt [OUTDIR]
  3. If OUTDIR is not the default, point the tests at it:
       export SIP_TORTURE_DIR=/absolute/path/to/OUTDIR

USAGE
  $prog RFC4475.txt RFC5118.txt [OUTDIR]
  $prog -h | --help

  OUTDIR defaults to \$SIP_TORTURE_DIR if set, else ../shared/corpus relative
  to the repository root (currently: $repo_root/../shared/corpus).
  A relative \$SIP_TORTURE_DIR or OUTDIR is taken relative to the current
  directory; prefer absolute paths. OUTDIR must lie outside this repository
  (the data must not be committed).

WHAT IT WRITES
  OUTDIR/rfc4475/<name>.dat       49 messages, byte-exact (e.g. wsinv.dat)
  OUTDIR/rfc4475/SHA256SUMS
  OUTDIR/rfc4475/extra/test.dat   in the archive but described nowhere in the
  OUTDIR/rfc4475/extra/SHA256SUMS RFC; kept apart so *.dat globs see only 49
  OUTDIR/rfc5118/<name>           12 messages, no extension (e.g. ipv6-good)
  OUTDIR/rfc5118/SHA256SUMS
  Files whose content is already identical are left untouched. The SHA256SUMS
  files can be re-checked later with: (cd OUTDIR/rfc4475 && sha256sum -c SHA256SUMS)

  Every file is then checked against the SHA-256 values embedded in this
  script (taken from a verified decode of the RFC archives) and reported as
  OK / MISMATCH / MISSING.

HOW THE DECODING WORKS (as the RFCs describe it)
  Each RFC's Appendix A has the archive between two marker lines
      -- BEGIN MESSAGE ARCHIVE --
      -- END MESSAGE ARCHIVE --
  Between them, only lines that consist of a single whitespace-free token are
  base64 data; the RFC page footers/headers, form feeds and blank lines are
  dropped, and the 3-space indent is stripped. (RFC 4475 also prints a Perl
  decoder whose source mentions both markers on one line; that line is not a
  block.) The base64 is decoded, gunzipped and untarred; member files are read
  from the tar in memory and written under their own base names.

  By hand, equivalently: copy the lines between the markers, delete the page
  break lines (footer "... [Page N]", form feed, "RFC 4475 ... May 2006"
  header), then:  tr -d ' \\t\\f\\r' < block.txt | base64 -d | tar -xzvf -

QUIRKS OF THE DATA (do not "fix" the files; tests rely on the exact bytes)
  - rfc4475/baddn.dat has no terminating empty line: it ends "l: 0\\r\\n"
    without the final CRLF that closes the header section. Some projects
    append it; the RFC archive does not.
  - rfc5118/* use bare LF line endings exactly as in the RFC archive (no CR
    octets at all). The tests convert LF to CRLF before parsing. In addition
    the two section 4.10 messages (ipv6-bug-abnf-3-colons,
    ipv6-correct-abnf-2-colons) lack the empty line ending the headers, and
    ipv6-in-sdp / mult-ip-in-sdp declare a Content-Length matching neither
    the LF nor the CRLF body.
  - Several RFC 4475 files hold raw NUL, UTF-8 and binary octets (intmeth,
    mpart01, ...) and dblreq.dat has trailing octets after the message: treat
    them as bytes, never as text.

EXIT STATUS
  0 all files extracted and verified; 1 a checksum MISMATCH or MISSING file;
  2 usage error; 3 an input could not be read or decoded, or OUTDIR refused.
EOF
}

case "${1:-}" in
    -h|--help)
        usage
        exit 0
        ;;
esac

if [[ $# -eq 0 ]]; then
    usage
    exit 2
fi
if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "error: expected RFC4475.txt RFC5118.txt [OUTDIR], got $# argument(s)" >&2
    echo "usage: $prog RFC4475.txt RFC5118.txt [OUTDIR]   (run with --help for details)" >&2
    exit 2
fi

if [[ $# -eq 3 ]]; then
    outdir="$3"
elif [[ -n "${SIP_TORTURE_DIR:-}" ]]; then
    outdir="$SIP_TORTURE_DIR"
else
    outdir="$repo_root/../shared/corpus"
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is required (standard library only)" >&2
    exit 3
fi

# Expected SHA-256 of every archive member, as data: "<sha256>  <subdir>/<file>".
# Values from a decode of the RFC archives, cross-checked against independent
# copies; an RFC text that decodes to anything else is reported as MISMATCH.
EXPECTED_SUMS='
f8f6e2f4247287b0be6adb5ac222a6db4759395e44d27d2ddb9b39393e94867e  rfc4475/badaspec.dat
cb049c727f16b5ec49e822f9e8b7d0ee20ca2d20ffb50baecd0b411a5e64fa7d  rfc4475/badbranch.dat
1208a6e3e0c8a8c33a06a1f3733d158413cb72e58c379d094c4ecea11e9d4c28  rfc4475/baddate.dat
9d9428e8017092f194ec11077ba6865c251308cdfd7fd9db6a993b28e5748951  rfc4475/baddn.dat
9ee2b88f2e0b5a9eeb9bf729b6177f0a0c7d0b5e6c84be593e0480d7962f3ab8  rfc4475/badinv01.dat
037d702d19e934bfeebbd2609050d7d54928d590cf90c78f3914522771dd8e03  rfc4475/badvers.dat
073637c63597199179cf5fc91b980b2d530c066a0048ea3b908772def57b4c36  rfc4475/bcast.dat
57181987c02c4f5752b7aa8c2847311f6184216ce7621e40303015949e70761c  rfc4475/bext01.dat
f79450070975da54c3525c9a5cbe75bae3c9d8cb92eba609772c26f66f225c2e  rfc4475/bigcode.dat
d9da629086a38df433438fb0fb19a8730f34516f049a5520dd0cac3285485290  rfc4475/clerr.dat
dfa6b5cdb289adc694b9b7e103ebfa7a2167335c46e5dc9de67055021910ae1c  rfc4475/cparam01.dat
e93574215bd1d804bb46cc15ca6176b567def7ea1b15f72ab2c2dcf598af465a  rfc4475/cparam02.dat
a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef  rfc4475/dblreq.dat
be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e  rfc4475/esc01.dat
9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199  rfc4475/esc02.dat
263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90  rfc4475/escnull.dat
c3cf30af13a9d107829cc105effd79355f1139c6ecc683a048b4c27951f8f416  rfc4475/escruri.dat
1e3efd9f3b238c6351ba12bc7eb46d843f2761b5d4a6b82b63bffdf07f2c5aee  rfc4475/insuf.dat
b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d  rfc4475/intmeth.dat
76fac8afe22dee49ea696b511621946694897ac7030fc5d07f57c8b487ce0521  rfc4475/inv2543.dat
9b39e824947df46f90f824cd308fb3c118f548d94637f581101e355b381a0d92  rfc4475/invut.dat
185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa  rfc4475/longreq.dat
bcacb2dc17610e8cc8f9b8b0e3d6ee65ab473f93787a03bbd33579e1cea473df  rfc4475/ltgtruri.dat
d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6  rfc4475/lwsdisp.dat
3e22ceeca585ad23cc180208e2dad94e0a5aa4bb877a61cac443aa927f758b9e  rfc4475/lwsruri.dat
f884e5626c6c5b1210cfc4a3540b8a28bd52939cff092f3f0c5c971e032adb0e  rfc4475/lwsstart.dat
887191619bf003b7e87399200b5cf4c3b5397344dbf70288ad5e23bd157b7fe4  rfc4475/mcl01.dat
a2c285636e451e75420da0cc62ee55ca3e398827008418befbfb078726bf0793  rfc4475/mismatch01.dat
01b287f9a9c492f7f57405c36c8a2af0e2393896ed2d25fb92b502f2a6722bc4  rfc4475/mismatch02.dat
92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba  rfc4475/mpart01.dat
d156ab12105b4bfd8a6498de6f7195087058162b8cda1606169855b722411791  rfc4475/multi01.dat
7ea6538edc1f054fdb6cd1c821040460cffca3cb682fa2e8e2a502d92170b4c2  rfc4475/ncl.dat
07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe  rfc4475/noreason.dat
9a50a7343fcf685e77c4d0f477138a28f32a41c75aa566d200f3df210b01e648  rfc4475/novelsc.dat
e61978a2ea359fc666f0336fe4dbc623447532280e3273ea98119b3d3f788c84  rfc4475/quotbal.dat
885ba0488872cfc04a3c7622854b8381955a5ee890745d6010834e3731a73faa  rfc4475/regaut01.dat
575d27530275814c1c98be164808fac89a0e2b4fc899dadcd97e6ba499437bda  rfc4475/regbadct.dat
dab4087c133348b06fd7b3c4c7ef15094f8754e265e4e8c2137bb3ecda2ef477  rfc4475/regescrt.dat
53158177326568e9964bce5dcfac27a2bf8a90953bbc03f6c5e2775864a97e4b  rfc4475/scalar02.dat
0957eca31737e3592eb1418bb41e9f5219278a78ff420111620d7fb60175b551  rfc4475/scalarlg.dat
497c5f1ced6c7b579b48075e2dca919ce9b819a735964128a6e744a3a0b9e57f  rfc4475/sdp01.dat
87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2  rfc4475/semiuri.dat
33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc  rfc4475/transports.dat
64ae20694026e28c10746b57386b7fd1276de02b6f8d42d418070e87d6f4499f  rfc4475/trws.dat
81be1a6a566c7ab52fe1c58c4a75440dfd697ad04c5e09fa71340de7da7b8bbb  rfc4475/unkscm.dat
f6914409ced613ef5eb56e264d2f096dac26ab9e397d6a638934d2027f1f6acb  rfc4475/unksm2.dat
4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7  rfc4475/unreason.dat
d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61  rfc4475/wsinv.dat
50954ef47acca4f9f5263ded06246d06dee4e2ee508a8d284191795d7fddf365  rfc4475/zeromf.dat
fe1cb604956316c0831e28bdc2ebda829a999e187ee801b08251bdb6e74014c7  rfc4475/extra/test.dat
b3d7df025b6465461741c3788fa3b48af25b08d6a2fdb59ded815cc0afc04a68  rfc5118/ipv4-mapped-ipv6
f6ffa0b2e664d05dbecde6bd7eb6fd71a9f01d43a3a0d3e084766c6240be4972  rfc5118/ipv6-bad
e542604dca3aed5c346a549c1f692aecf98a12353b38283be3e199664abeb43e  rfc5118/ipv6-bug-abnf-3-colons
6a8c09976009aab0159cf1b8cc3e2964b3853557102b5b86bf2b6b2c48c0779e  rfc5118/ipv6-correct-abnf-2-colons
80654d05559d5bda7d584b39e0f4dbf69b23189cb140754ef889a4996a3505ed  rfc5118/ipv6-good
c09ab30a92e790ecd261aadbb3876f8043307bffec3103f5add052d64a125532  rfc5118/ipv6-in-sdp
ace698f6827e940812cfe26c48960f9069b02291b0022b0777cf00f37405f83a  rfc5118/mult-ip-in-header
c50fb1a29fdf4f0c3c12cf9cf5b490df1bb86d6dfacf7bc807e2c3e7e8660013  rfc5118/mult-ip-in-sdp
e1925cfd89436c36025fd21d144b7788cb988bfd752498cf767e3303426f2e7d  rfc5118/port-ambiguous
be3a4dbac87b1cdabde97595d117773e3864ffd2ff7ab645bfd5773e280bcd4e  rfc5118/port-unambiguous
45f233fd536e7d4d9f47be5098992cd912394a80460dd6b16979f61a713b9dd9  rfc5118/via-received-param-no-delim
568255f70f186f7d09fe437a662bb32a7b14285c5243222a1a401004b7e6ba80  rfc5118/via-received-param-with-delim
'
export EXPECTED_SUMS

exec python3 - "$1" "$2" "$outdir" "$repo_root" <<'PYTHON'
import base64
import binascii
import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
import sys
import tarfile
import tempfile
import zlib

EXIT_OK, EXIT_MISMATCH, EXIT_INPUT = 0, 1, 3

BEGIN_MARKER = "-- BEGIN MESSAGE ARCHIVE --"
END_MARKER = "-- END MESSAGE ARCHIVE --"
B64_TOKEN = re.compile(r"[A-Za-z0-9+/]+=*")


class InputError(Exception):
    pass


def note(msg):
    print(msg, flush=True)


def warn(msg):
    print("warning: " + msg, file=sys.stderr, flush=True)


def load_expected():
    """Parse EXPECTED_SUMS into {subdir: {relative name: sha256}}."""
    table = {}
    for line in os.environ.get("EXPECTED_SUMS", "").splitlines():
        line = line.strip()
        if not line:
            continue
        digest, path = line.split(None, 1)
        subdir, name = path.split("/", 1)
        table.setdefault(subdir, {})[name] = digest.lower()
    return table


def rfc_number(raw):
    """The RFC number from the document header, or None."""
    head = raw[:6000].decode("latin-1")
    m = re.search(r"Request for Comments:\s*(\d+)", head)
    return m.group(1) if m else None


def archive_blocks(raw):
    """Yield (first_line_no, [base64 tokens], [skipped odd lines]) per marker block.

    A block opens at a line whose only content is the BEGIN marker and closes at
    the END marker line. RFC 4475 also quotes both markers inside one line of its
    Perl decoder (a range that opens and closes on that same line, holding no
    data); requiring the marker to be the whole line skips it. Lines are split
    on LF only: a form feed (RFC page break) stays a line of its own and is
    whitespace, so it is dropped like any blank line.
    """
    lines = raw.split(b"\n")
    block = None
    for no, bline in enumerate(lines, 1):
        text = bline.decode("latin-1")
        stripped = text.strip()
        if block is None:
            if stripped == BEGIN_MARKER:
                block = (no, [], [])
            continue
        if stripped == END_MARKER:
            yield block
            block = None
            continue
        if stripped == BEGIN_MARKER:
            warn("line %d: BEGIN marker inside an open block; restarting the block" % no)
            block = (no, [], [])
            continue
        tokens = stripped.split()
        if len(tokens) != 1:
            # blank line, form feed, page header/footer, prose: not data
            continue
        token = tokens[0]
        if B64_TOKEN.fullmatch(token):
            block[1].append(token)
        else:
            block[2].append((no, token))
    if block is not None:
        warn("BEGIN marker at line %d has no matching END marker" % block[0])


def decode_block(tokens):
    """base64 -> (compression kind, uncompressed tar bytes)."""
    data = "".join(tokens)
    if not data:
        raise InputError("block holds no base64 lines")
    stem = data.rstrip("=")
    if "=" in stem:
        raise InputError("'=' padding in the middle of the base64 data "
                         "(lines from two blocks mixed, or a damaged line)")
    if len(data) % 4 != 0:
        raise InputError("base64 length %d is not a multiple of 4 "
                         "(a data line was lost or an extra one picked up)" % len(data))
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError("base64 decoding failed: %s" % e)
    try:
        if blob[:2] == b"\x1f\x8b":
            return "gzip", gzip.decompress(blob), len(blob)
        if blob[:3] == b"BZh":
            return "bzip2", bz2.decompress(blob), len(blob)
        if blob[:6] == b"\xfd7zXZ\x00":
            return "xz", lzma.decompress(blob), len(blob)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
        raise InputError("decompression failed (damaged or incomplete data): %s" % e)
    return "uncompressed", blob, len(blob)


def tar_members(tar_bytes):
    """Regular files of the tar as an ordered list of (base name, bytes)."""
    out = []
    seen = set()
    try:
        tf = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:")
        members = tf.getmembers()
    except tarfile.TarError as e:
        raise InputError("not a readable tar archive: %s" % e)
    for m in members:
        if m.isdir():
            continue
        if not m.isfile():
            warn("skipping non-regular tar member %r" % m.name)
            continue
        base = m.name.replace("\\", "/").rstrip("/").split("/")[-1]
        if base in ("", ".", ".."):
            warn("skipping tar member with unusable name %r" % m.name)
            continue
        if base in seen:
            raise InputError("two tar members are named %r" % base)
        seen.add(base)
        try:
            out.append((base, tf.extractfile(m).read()))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InputError("cannot read tar member %r: %s" % (m.name, e))
    return out


def extract_archive(path, label):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError("cannot read %s: %s" % (path, e.strerror or e))
    blocks = list(archive_blocks(raw))
    if not blocks:
        hint = ""
        if b"MESSAGE ARCHIVE" in raw:
            hint = " (the marker text occurs, but never alone on a line: is this the HTML page?)"
        raise InputError("%s: no '%s' ... '%s' block found%s; "
                         "pass the plain-text %s (rfc-editor.org/rfc/%s.txt)"
                         % (path, BEGIN_MARKER, END_MARKER, hint, label, label.lower().replace(" ", "")))
    good = []
    errors = []
    for first_line, tokens, odd in blocks:
        try:
            kind, tar_bytes, nbytes = decode_block(tokens)
            members = tar_members(tar_bytes)
        except InputError as e:
            errors.append("block at line %d (%d data lines): %s" % (first_line, len(tokens), e))
            continue
        good.append((first_line, tokens, odd, kind, nbytes, members))
    if not good:
        raise InputError("%s: no archive block could be decoded:\n  %s" % (path, "\n  ".join(errors)))
    if len(good) > 1:
        warn("%s: %d decodable archive blocks; using the largest" % (path, len(good)))
    first_line, tokens, odd, kind, nbytes, members = max(good, key=lambda g: len(g[1]))
    for no, token in odd:
        warn("%s line %d: skipped single-token line that is not base64: %r" % (path, no, token[:40]))
    note("%s: archive block at line %d: %d base64 lines -> %d-byte %s tar, %d files"
         % (label, first_line, len(tokens), nbytes, kind, len(members)))
    return members


def write_if_changed(path, data):
    """Write atomically; leave an identical file alone. Returns True if written."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sums_text(files):
    return "".join("%s  %s\n" % (sha256(data), name) for name, data in sorted(files.items()))


def install(subdir, members, outdir, expected):
    """Write members under outdir/subdir (unexpected names go to extra/); verify."""
    want = expected.get(subdir, {})
    main, extra = {}, {}
    for name, data in members:
        if name in want:
            main[name] = data
        else:
            extra[name] = data
    base = os.path.join(outdir, subdir)
    written = unchanged = 0
    for where, files in ((base, main), (os.path.join(base, "extra"), extra)):
        if not files:
            continue
        os.makedirs(where, exist_ok=True)
        outputs = dict(files)
        outputs["SHA256SUMS"] = sums_text(files).encode()
        for name, data in outputs.items():
            if write_if_changed(os.path.join(where, name), data):
                written += 1
            else:
                unchanged += 1
    extra_note = ", %d more in extra/" % len(extra) if extra else ""
    note("%s: %d messages in %s/%s (%d files written, %d already identical)"
         % (subdir, len(main), base, extra_note, written, unchanged))

    bad = 0
    got = dict(main)
    got.update({"extra/" + n: d for n, d in extra.items()})
    for name in sorted(want):
        if name not in got:
            note("MISSING   %s/%s (not in the archive)" % (subdir, name))
            bad += 1
            continue
        actual = sha256(got[name])
        if actual == want[name]:
            note("OK        %s/%s" % (subdir, name))
        else:
            note("MISMATCH  %s/%s  got %s  expected %s" % (subdir, name, actual, want[name]))
            bad += 1
    for name in sorted(set(got) - set(want)):
        note("EXTRA     %s/%s (no expected checksum known)" % (subdir, name))
    return bad


def main():
    rfc4475, rfc5118, outdir, repo_root = sys.argv[1:5]
    expected = load_expected()

    try:
        nums = {}
        for path in (rfc4475, rfc5118):
            with open(path, "rb") as f:
                nums[path] = rfc_number(f.read(6000))
    except OSError as e:
        raise InputError("cannot read %s: %s" % (e.filename, e.strerror))
    if nums[rfc4475] == "5118" and nums[rfc5118] == "4475":
        warn("arguments look swapped (first is RFC 5118, second RFC 4475); using them the other way round")
        rfc4475, rfc5118 = rfc5118, rfc4475
    for want, path in (("4475", rfc4475), ("5118", rfc5118)):
        got = nums[path]
        if got is None:
            warn("%s: no 'Request for Comments:' header found; assuming it is RFC %s" % (path, want))
        elif got != want:
            raise InputError("%s is RFC %s, expected RFC %s" % (path, got, want))

    outdir_abs = os.path.realpath(outdir)
    root_abs = os.path.realpath(repo_root)
    if outdir_abs == root_abs or outdir_abs.startswith(root_abs + os.sep):
        raise InputError("OUTDIR %s is inside the repository %s; the corpus is third-party data "
                         "and must stay out of the tree (choose a directory outside it)"
                         % (outdir_abs, root_abs))
    note("output directory: %s" % outdir_abs)

    m4475 = extract_archive(rfc4475, "RFC 4475")
    m5118 = extract_archive(rfc5118, "RFC 5118")

    try:
        bad = install("rfc4475", m4475, outdir_abs, expected)
        bad += install("rfc5118", m5118, outdir_abs, expected)
    except OSError as e:
        raise InputError("cannot write to %s: %s" % (e.filename or outdir_abs, e.strerror or e))

    if bad:
        note("FAILED: %d file(s) missing or not byte-identical to the known corpus. The files were "
             "written as decoded; check that the inputs are the unmodified rfc-editor.org .txt files."
             % bad)
        return EXIT_MISMATCH
    note("all files verified. Tests read them from SIP_TORTURE_DIR=%s (default ../shared/corpus "
         "relative to the repository root)." % outdir_abs)
    return EXIT_OK


try:
    sys.exit(main())
except InputError as e:
    print("error: %s" % e, file=sys.stderr)
    sys.exit(EXIT_INPUT)
PYTHON
