package submitcli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"strconv"
	"strings"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
)

// decodeInput turns one argument or input line, JSON as the user wrote it,
// into a task's input.
type decodeInput func(raw []byte) (any, error)

// inputDecoder returns how the inputs of kind are read. For a kind whose Go
// input type the command knows (the built-in ones), the JSON is decoded into
// that type with encoding/json, so its json tags count, an unknown field is
// an error and a value of the wrong type is reported in words before
// anything is submitted; the value then travels as msgpack of that type,
// which is what its workers decode. Any other kind's JSON is sent as it is,
// and only its syntax is checked here.
func inputDecoder(kind string) decodeInput {
	switch kind {
	case builtin.Square.Kind():
		return typedInput(builtin.Square)
	case builtin.SayHi.Kind():
		return typedInput(builtin.SayHi)
	case builtin.Sleep.Kind():
		return typedInput(builtin.Sleep)
	case builtin.Download.Kind():
		return typedInput(builtin.Download)
	case builtin.Copy.Kind():
		return typedInput(builtin.Copy)
	}
	return parseJSON
}

// typedInput decodes inputs of t into its input type In.
func typedInput[In, Out any](t task.Task[In, Out]) decodeInput {
	return func(raw []byte) (any, error) {
		b := raw
		if !json.Valid(b) && isBareWord(b) {
			b, _ = json.Marshal(string(b))
		}
		if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
			return nil, fmt.Errorf("%s takes %s, got null", t.Kind(), want(reflect.TypeFor[In]()))
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		var in In
		if err := d.Decode(&in); err != nil {
			return nil, inWords(t.Kind(), reflect.TypeFor[In](), err)
		}
		if _, err := d.Token(); err != io.EOF {
			return nil, errors.New("more than one JSON value")
		}
		return in, nil
	}
}

// inWords says what is wrong with an input of kind, of Go type typ, that
// encoding/json refused with err.
func inWords(kind string, typ reflect.Type, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Errorf("%s takes %s, got %s", kind, want(typ), got(typeErr.Value))
		}
		return fmt.Errorf("%s takes %s: its %q is %s, got %s", kind, want(typ), typeErr.Field, want(typeErr.Type), got(typeErr.Value))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return notJSON(err)
	case errors.Is(err, io.EOF):
		return errors.New("empty, want a JSON value")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return fmt.Errorf("%s takes %s, which has no field %s", kind, want(typ), field)
	}
	return fmt.Errorf("%s: %w", kind, err)
}

// want describes a Go input type as the JSON it takes.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Map:
		return "an object"
	case reflect.Struct:
		var fields []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields = append(fields, strconv.Quote(name))
		}
		return "an object with the fields " + strings.Join(fields, ", ")
	case reflect.Pointer:
		return want(t.Elem())
	}
	return "a " + t.String()
}

// got describes the JSON value encoding/json names in a type error.
func got(value string) string {
	switch value {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "true or false"
	case "array":
		return "an array"
	case "object":
		return "an object"
	}
	if n, ok := strings.CutPrefix(value, "number "); ok {
		return "the number " + n
	}
	return value
}

func notJSON(err error) error {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "it ends too soon"
	}
	return fmt.Errorf("not JSON: %s", msg)
}

// parseJSON decodes one JSON value for a kind whose input type is not known
// here, keeping integers as int64 so workers decode them into integer
// inputs. A bare word that is not JSON is taken as a string, so
// `submit map say-hi ada bob` works.
func parseJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		if isBareWord(b) {
			return string(b), nil
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty, want a JSON value")
		}
		return nil, notJSON(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return normalize(v), nil
}

func isBareWord(b []byte) bool {
	s := string(b)
	return s != "" && !strings.ContainsAny(s, "{}[]\"") && !strings.HasPrefix(s, "-") && (s[0] < '0' || s[0] > '9')
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

// inputError is an input the command refused: which one, as the user gave
// it, and why.
type inputError struct {
	where string // `argument 2` or `line 7`
	raw   []byte
	err   error
}

func (e *inputError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.where, quoteInput(e.raw), e.err)
}

func (e *inputError) Unwrap() error { return e.err }

// quoteInput quotes an input for a message, cut short if it is long.
func quoteInput(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return strconv.Quote(string(raw[:max])) + "..."
	}
	return strconv.Quote(string(raw))
}

// jsonLines yields one decoded input per non-empty line of r, with its line
// number. A line that decode refuses ends the sequence and sets *errp to an
// *inputError naming the line.
func jsonLines(r io.Reader, decode decodeInput, errp *error) iter.Seq2[int, any] {
	return func(yield func(int, any) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			v, err := decode(b)
			if err != nil {
				*errp = &inputError{where: "line " + strconv.Itoa(line), raw: bytes.Clone(b), err: err}
				return
			}
			if !yield(line, v) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			*errp = fmt.Errorf("line %d: %w", line+1, err)
		}
	}
}
