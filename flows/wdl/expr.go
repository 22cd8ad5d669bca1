package wdl

import (
	"fmt"
	"strconv"
	"strings"
)

// Expressions. A JSON string in a definition is a template:
//
//	"@expr"           the expression's value, of any type
//	"@@text"          the literal "@text"
//	"a @{expr} b"     interpolation: a string, each @{…} formatted as text
//	                  ("@@{" is a literal "@{")
//	anything else     a literal string
//
// An expression is a literal ('text' with '' for a quote, a number, true,
// false, null), a function call name(args…), followed by any number of
// member accesses: .x, ?.x, ['x'], ?['x'], [0]. Function names compare
// case-insensitively, as in Logic Apps.

// Limits on expressions.
const (
	maxExprLen  = 8192    // bytes of one template string
	maxStrBytes = 1 << 20 // bytes of a string an expression evaluates to
	maxExprDeep = 64      // nesting of calls and brackets
)

// template is a compiled template string.
type template struct {
	src   string
	whole expr   // "@expr": the value itself
	parts []part // interpolation, when whole is nil
}

// part is a literal piece of an interpolated string or an expression.
type part struct {
	lit string
	x   expr
}

// expr is a parsed expression.
type expr interface{ String() string }

type litExpr struct{ v any }

type callExpr struct {
	name string // lower case
	args []expr
	src  string // as written, for messages
}

type memberExpr struct {
	x        expr
	key      expr // a string or number literal, or any expression in brackets
	optional bool // ?. or ?[
}

func (e *litExpr) String() string {
	if s, ok := e.v.(string); ok {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return formatText(e.v)
}
func (e *callExpr) String() string {
	a := make([]string, len(e.args))
	for i, x := range e.args {
		a[i] = x.String()
	}
	return e.src + "(" + strings.Join(a, ", ") + ")"
}
func (e *memberExpr) String() string {
	q := ""
	if e.optional {
		q = "?"
	}
	return e.x.String() + q + "[" + e.key.String() + "]"
}

// isTemplate reports whether s holds an expression (and so needs
// compiling), as opposed to a literal string.
func isTemplate(s string) bool {
	return strings.HasPrefix(s, "@") || strings.Contains(s, "@{")
}

// compileTemplate parses a template string. The error says what is wrong
// but not where in the definition: the caller adds the path.
func compileTemplate(s string) (*template, error) {
	if len(s) > maxExprLen {
		return nil, fmt.Errorf("expression is %d bytes, over the limit of %d: move the data into a variable or a Compose action", len(s), maxExprLen)
	}
	t := &template{src: s}
	if strings.HasPrefix(s, "@@") {
		t.parts = []part{{lit: s[1:]}}
		return t, nil
	}
	if strings.HasPrefix(s, "@") && !strings.HasPrefix(s, "@{") {
		x, err := parseExpr(s[1:])
		if err != nil {
			return nil, err
		}
		t.whole = x
		return t, nil
	}
	rest := s
	var lit strings.Builder
	for rest != "" {
		i := strings.Index(rest, "@")
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		lit.WriteString(rest[:i])
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "@@{"):
			lit.WriteString("@{")
			rest = rest[3:]
		case strings.HasPrefix(rest, "@{"):
			end, err := closingBrace(rest[2:])
			if err != nil {
				return nil, err
			}
			x, err := parseExpr(rest[2 : 2+end])
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, part{x: x})
			rest = rest[2+end+1:]
		default:
			lit.WriteByte('@')
			rest = rest[1:]
		}
	}
	if lit.Len() > 0 || len(t.parts) == 0 {
		t.parts = append(t.parts, part{lit: lit.String()})
	}
	return t, nil
}

// closingBrace finds the '}' that closes an @{ in s, skipping quoted
// strings.
func closingBrace(s string) (int, error) {
	inStr := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr && c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i++
			} else {
				inStr = false
			}
		case inStr:
		case c == '\'':
			inStr = true
		case c == '}':
			return i, nil
		}
	}
	return 0, fmt.Errorf("@{ is not closed by }")
}

// parser is a recursive-descent parser of one expression.
type parser struct {
	src   string
	pos   int
	depth int
}

func parseExpr(src string) (expr, error) {
	p := &parser{src: src}
	p.space()
	if p.pos == len(p.src) {
		return nil, fmt.Errorf("the expression is empty")
	}
	x, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("unexpected %q at position %d", clipRunes(p.src[p.pos:], 20), p.pos+1)
	}
	return x, nil
}

func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (p *parser) space() {
	for p.pos < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("position %d: "+format, append([]any{p.pos + 1}, args...)...)
}

func (p *parser) expr() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDeep {
		return nil, p.errorf("the expression nests deeper than %d levels", maxExprDeep)
	}
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		p.space()
		opt := false
		if strings.HasPrefix(p.src[p.pos:], "?") {
			opt = true
			p.pos++
		}
		switch {
		case strings.HasPrefix(p.src[p.pos:], "."):
			p.pos++
			name := p.ident()
			if name == "" {
				return nil, p.errorf("expected a property name after '.'")
			}
			x = &memberExpr{x: x, key: &litExpr{v: name}, optional: opt}
		case strings.HasPrefix(p.src[p.pos:], "["):
			p.pos++
			p.space()
			k, err := p.expr()
			if err != nil {
				return nil, err
			}
			p.space()
			if !strings.HasPrefix(p.src[p.pos:], "]") {
				return nil, p.errorf("expected ']'")
			}
			p.pos++
			x = &memberExpr{x: x, key: k, optional: opt}
		default:
			if opt {
				return nil, p.errorf("expected '.' or '[' after '?'")
			}
			return x, nil
		}
	}
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || p.pos > start && c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.src[start:p.pos]
}

func (p *parser) primary() (expr, error) {
	p.space()
	if p.pos >= len(p.src) {
		return nil, p.errorf("the expression ends early")
	}
	c := p.src[p.pos]
	switch {
	case c == '\'':
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.src) {
				return nil, p.errorf("a string is not closed by '")
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos += 2
					continue
				}
				p.pos++
				return &litExpr{v: b.String()}, nil
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
	case c == '-' || c == '+' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte("0123456789.eE", p.src[p.pos]) >= 0 {
			if (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') && p.pos+1 < len(p.src) && (p.src[p.pos+1] == '-' || p.src[p.pos+1] == '+') {
				p.pos++
			}
			p.pos++
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			p.pos = start
			return nil, p.errorf("%q is not a number", p.src[start:min(len(p.src), start+20)])
		}
		return &litExpr{v: f}, nil
	}
	start := p.pos
	name := p.ident()
	if name == "" {
		return nil, p.errorf("unexpected %q: expected a function call, a 'string' or a number", clipRunes(p.src[p.pos:], 20))
	}
	p.space()
	if !strings.HasPrefix(p.src[p.pos:], "(") {
		switch strings.ToLower(name) {
		case "true":
			return &litExpr{v: true}, nil
		case "false":
			return &litExpr{v: false}, nil
		case "null":
			return &litExpr{v: nil}, nil
		}
		p.pos = start
		return nil, p.errorf("%q is not a function call: write %s(…), or quote text as '%s'", name, name, name)
	}
	p.pos++
	call := &callExpr{name: strings.ToLower(name), src: name}
	p.space()
	if strings.HasPrefix(p.src[p.pos:], ")") {
		p.pos++
	} else {
		for {
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			call.args = append(call.args, a)
			p.space()
			if strings.HasPrefix(p.src[p.pos:], ",") {
				p.pos++
				continue
			}
			if strings.HasPrefix(p.src[p.pos:], ")") {
				p.pos++
				break
			}
			return nil, p.errorf("expected ',' or ')' in the arguments of %s", name)
		}
	}
	f, ok := functions[call.name]
	if !ok {
		return nil, fmt.Errorf("function %q is not supported (docs/flows.md lists the functions)", name)
	}
	if len(call.args) < f.min || f.max >= 0 && len(call.args) > f.max {
		return nil, fmt.Errorf("%s takes %s, not %d", name, arity(f.min, f.max), len(call.args))
	}
	return call, nil
}

func arity(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d arguments", lo)
	case lo == hi && lo == 1:
		return "1 argument"
	case lo == hi:
		return fmt.Sprintf("%d arguments", lo)
	default:
		return fmt.Sprintf("%d to %d arguments", lo, hi)
	}
}

// walkCalls calls fn for every call in x.
func walkCalls(x expr, fn func(*callExpr) error) error {
	switch x := x.(type) {
	case *callExpr:
		if err := fn(x); err != nil {
			return err
		}
		for _, a := range x.args {
			if err := walkCalls(a, fn); err != nil {
				return err
			}
		}
	case *memberExpr:
		if err := walkCalls(x.x, fn); err != nil {
			return err
		}
		return walkCalls(x.key, fn)
	}
	return nil
}

// exprs returns the template's expressions.
func (t *template) exprs() []expr {
	if t.whole != nil {
		return []expr{t.whole}
	}
	var out []expr
	for _, p := range t.parts {
		if p.x != nil {
			out = append(out, p.x)
		}
	}
	return out
}
