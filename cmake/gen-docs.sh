#!/bin/sh
# cmake/gen-docs.sh -- fleetlease(1) and the reference block of docs/cli.md,
# both from the command's own --help texts.
#
#   gen-docs.sh man       FLEETLEASE VERSION        roff on stdout
#   gen-docs.sh md        FLEETLEASE VERSION        the docs/cli.md block on stdout
#   gen-docs.sh update-md FLEETLEASE VERSION FILE   rewrite that block in FILE
#   gen-docs.sh check-md  FLEETLEASE VERSION FILE   exit 1 (with a diff) if FILE's
#                                                   block is not what md prints
#
# Why the built command and not the C sources: the usage strings in
# src/cli/*.c and src/http/*.c are the one source, and the command is what
# assembles them (the subcommand table, the global help); parsing C string
# literals with awk would be a second, weaker parser of the same text.
# The cost is that the docs need a built command (a cross build would run
# it under CMAKE_CROSSCOMPILING_EMULATOR).
#
# The --help texts follow a few layout rules, which this script relies on
# and which make them render well in a terminal too:
#   - blocks are separated by blank lines; the first block of a command is
#     its "usage:" synopsis;
#   - a block may start with a header, one line "Name:" or "Name (note):";
#   - an item is a line indented by two spaces: the term, two or more
#     spaces, the description (under a header the term may stand alone on
#     its line); or an unindented short term ("rm NAME") and three or more
#     spaces before the description.  Lines indented by three or more
#     continue the description;
#   - under an "Example:" header every indented line is literal, and so
#     are other indented lines that are not items; lines that are not
#     indented are prose.
set -eu

mode=${1:?usage: gen-docs.sh man|md|update-md|check-md FLEETLEASE VERSION [FILE]}
bin=${2:?missing FLEETLEASE (the built command)}
version=${3:?missing VERSION}
LC_ALL=C
export LC_ALL

BEGIN_MARK='<!-- BEGIN REFERENCE: generated from `fleetlease --help` by cmake/gen-docs.sh; edit the usage strings in src/, then run `cmake --build BUILD --target cli-doc` -->'
END_MARK='<!-- END REFERENCE -->'

# The commands, in the order of the subcommand table, from the global help.
commands() {
    "$bin" --help | awk '
        /^Commands:$/ { on = 1; next }
        on && /^$/ { exit }
        on && /^  [a-z]/ { print $1 }'
}

# The input of the converters: the global help, then each command's usage.
# "help CMD" prints the usage without running any of the command's code.
help_stream() {
    printf '@@GLOBAL\n'
    "$bin" --help
    for c in $(commands); do
        summary=$("$bin" --help | awk -v c="$c" '
            /^Commands:$/ { on = 1; next }
            on && /^$/ { exit }
            on && $1 == c { sub(/^  [^ ]+ +/, ""); print; exit }')
        printf '@@CMD %s\t%s\n' "$c" "$summary"
        "$bin" help "$c"
    done
}

markdown() {
    help_stream | awk -v begin_mark="$BEGIN_MARK" -v end_mark="$END_MARK" '
        function close_block() { if (open) { print "```"; open = 0 } }
        BEGIN {
            print begin_mark
            print ""
            print "## Reference"
            print ""
            print "Every `--help` text, as the command prints it. `fleetlease help COMMAND`"
            print "prints the same as `fleetlease COMMAND --help`; `man fleetlease` has it"
            print "all on one page."
            print ""
            print "### fleetlease --help"
            print ""
            print "```text"
            open = 1
        }
        /^@@GLOBAL$/ { next }
        /^@@CMD / {
            close_block()
            name = substr($0, 7); sub(/\t.*/, "", name)
            print ""
            print "### fleetlease " name
            print ""
            print "```text"
            open = 1
            next
        }
        { sub(/[ \t]+$/, ""); print }
        END { close_block(); print ""; print end_mark }'
}

man_page() {
    help_stream | awk -v version="$version" '
        # roff: backslash first, then minus signs (so options copy and
        # paste as ASCII), then lines that would start a request.
        function esc(s) {
            gsub(/\\/, "\\e", s)
            gsub(/-/, "\\-", s)
            if (s ~ /^[.\047]/) s = "\\&" s
            return s
        }
        function out(s) { body[++nb] = s }
        function end_item() {
            if (in_item) { in_item = 0 }
        }
        function end_literal() {
            if (in_lit) { out(".fi"); out(".RE"); in_lit = 0 }
        }
        function end_all() { end_item(); end_literal() }
        function lit(s) {
            end_item()
            if (!in_lit) { out(".PP"); out(".RS 4"); out(".nf"); in_lit = 1 }
            out(esc(s))
        }
        # One line of a section body (a command usage or a global section).
        function line(s,    t, d, n) {
            if (s == "") { end_all(); first = 1; header = ""; need_pp = 1; return }
            if (first && s ~ /^[A-Z][^:(]*( [(][^)]*[)])?:$/) {
                end_all()
                header = s
                need_pp = 0
                out(".PP"); out("\\fB" esc(s) "\\fR")
                first = 0
                return
            }
            first = 0
            example = header ~ /^Examples?( [(].*[)])?:$/
            if (!example && (s ~ /^  [^ ].*[^ ]  +[^ ]/ || (s ~ /^  [^ ]/ && header != "") ||
                             s ~ /^[a-z][^ ]*( [^ ]+)?   +[^ ]/)) {
                end_literal()
                need_pp = 0
                t = s; sub(/^ +/, "", t)
                d = ""
                n = match(t, /  +/)
                if (n) { d = substr(t, RSTART + RLENGTH); t = substr(t, 1, RSTART - 1) }
                out(".TP"); out("\\fB" esc(t) "\\fR")
                if (d != "") out(esc(d))
                in_item = 1
                return
            }
            if (s ~ /^   +[^ ]/ && in_item) {
                sub(/^ +/, "", s); out(esc(s)); return
            }
            if (s ~ /^ /) { need_pp = 0; lit(substr(s, 3)); return }
            # prose
            if (in_lit || in_item || need_pp) { end_all(); out(".PP") }
            need_pp = 0
            out(esc(s))
        }
        function flush_section(title) {
            end_all()
            sections[++ns] = title
            text[ns] = ""
            for (i = 1; i <= nb; i++) text[ns] = text[ns] body[i] "\n"
            nb = 0
        }
        function section_name(h,    n) {
            n = h; sub(/ \(.*$/, "", n); sub(/:$/, "", n)
            n = toupper(n)
            if (n == "EXIT CODES") n = "EXIT STATUS"
            return n
        }
        function section_note(h,    n) {
            if (h !~ / \(.*\):$/) return ""
            n = h; sub(/^[^(]*\(/, "", n); sub(/\):$/, "", n)
            return toupper(substr(n, 1, 1)) substr(n, 2) "."
        }
        /^@@GLOBAL$/ { where = "global"; gstate = "usage"; next }
        /^@@CMD / {
            if (where == "global" && gsec != "") flush_section(gsec)
            if (where == "cmd") flush_cmd()
            where = "cmd"
            cname = substr($0, 7); csum = cname
            sub(/\t.*/, "", cname); sub(/^[^\t]*\t/, "", csum)
            cstate = "usage"; first = 1; header = ""
            nb = 0
            next
        }
        where == "global" {
            if (gstate == "usage") {
                if ($0 == "") { gstate = "desc"; next }
                u = $0; sub(/^usage: +/, "", u); sub(/^ +/, "", u)
                synopsis[++nsyn] = u
                next
            }
            if (gstate == "desc") {
                if ($0 == "") next
                if ($0 ~ /^[A-Z][^:(]*( [(][^)]*[)])?:$/) { gstate = "sections" }
                else { desc[++ndesc] = $0; next }
            }
            if ($0 ~ /^[A-Z][^:(]*( [(][^)]*[)])?:$/ && prev_blank_or_start()) {
                if (gsec != "") flush_section(gsec)
                gsec = $0; first = 1; header = $0
                note = section_note($0)
                if (note != "") out(esc(note))
                gblank = 0
                next
            }
            gblank = ($0 == "")
            if (gsec ~ /^Commands:/) next
            line($0)
            next
        }
        where == "cmd" {
            if (cstate == "usage") {
                if ($0 == "") { cstate = "body"; first = 1; header = ""; need_pp = 1; next }
                u = $0; sub(/^usage: +/, "", u); sub(/^ +/, "    ", u)
                cusage[++ncu] = u
                next
            }
            line($0)
            next
        }
        function prev_blank_or_start() { return gblank || gsec == "" }
        function flush_cmd(    i) {
            end_all()
            cmds[++nc] = cname
            s1 = toupper(substr(csum, 1, 1)) substr(csum, 2)
            if (s1 !~ /[.?!]$/) s1 = s1 "."
            ctext[nc] = ".SS " cname "\n" esc(s1) "\n.PP\n.nf\n"
            for (i = 1; i <= ncu; i++) ctext[nc] = ctext[nc] esc(cusage[i]) "\n"
            ctext[nc] = ctext[nc] ".fi\n"
            for (i = 1; i <= nb; i++) ctext[nc] = ctext[nc] body[i] "\n"
            nb = 0; ncu = 0
        }
        END {
            if (where == "cmd") flush_cmd()
            print ".\\\" fleetlease(1): generated from `fleetlease --help` and"
            print ".\\\" `fleetlease help COMMAND` by cmake/gen-docs.sh.  Do not edit;"
            print ".\\\" edit the usage strings in src/ instead."
            print ".TH FLEETLEASE 1 \"\" \"fleetlease " version "\" \"User Commands\""
            print ".nh"
            print ".ad l"
            print ".SH NAME"
            d = desc[1]; sub(/\.$/, "", d); sub(/ \(providers\)$/, "", d)
            print "fleetlease \\- " esc(tolower(substr(d, 1, 1)) substr(d, 2))
            print ".SH SYNOPSIS"
            print ".nf"
            for (i = 1; i <= nsyn; i++) print esc(synopsis[i])
            for (i = 1; i <= nc; i++) {
                split(ctext[i], l, "\n")
                # the first usage line of each command, already escaped
                for (j = 1; l[j] != ".nf"; j++) ;
                print l[j + 1]
            }
            print ".fi"
            print ".SH DESCRIPTION"
            for (i = 1; i <= ndesc; i++) print esc(desc[i])
            print ".SH COMMANDS"
            for (i = 1; i <= nc; i++) printf "%s", ctext[i]
            for (s = 1; s <= ns; s++) {
                if (sections[s] ~ /^Commands:/) continue
                print ".SH " section_name(sections[s])
                printf "%s", text[s]
            }
            print ".SH SEE ALSO"
            print ".BR fleetlease (3),"
            print ".BR systemd.exec (5),"
            print ".BR pgpass (5)"
            print ".PP"
            print "docs/cli.md (examples and JSON output), docs/api.md (the HTTP API),"
            print "docs/operations.md (the operator\\(aqs guide), docs/design.md."
        }'
}

replace_block() { # FILE NEWBLOCKFILE -> FILE with the block replaced, on stdout
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v nf="$2" '
        index($0, "<!-- BEGIN REFERENCE") == 1 { while ((getline l < nf) > 0) print l; skip = 1; found = 1; next }
        skip && $0 == e { skip = 0; next }
        !skip { print }
        END { if (!found) { print "gen-docs.sh: no \"<!-- BEGIN REFERENCE\" line in the file" > "/dev/stderr"; exit 3 } }' "$1"
}

case $mode in
man) man_page ;;
md) markdown ;;
update-md|check-md)
    file=${4:?missing FILE}
    tmp=$(mktemp)
    trap 'rm -f "$tmp" "$tmp.new"' EXIT
    markdown >"$tmp"
    replace_block "$file" "$tmp" >"$tmp.new"
    if [ "$mode" = update-md ]; then
        if cmp -s "$tmp.new" "$file"; then
            echo "gen-docs.sh: $file is up to date"
        else
            cat "$tmp.new" >"$file"
            echo "gen-docs.sh: rewrote the reference block of $file"
        fi
    elif ! diff -u "$file" "$tmp.new"; then
        echo "gen-docs.sh: the reference block of $file differs from the --help texts;" >&2
        echo "run: cmake --build BUILD --target cli-doc (and commit docs/cli.md)" >&2
        exit 1
    fi
    ;;
*) echo "gen-docs.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
