package submitcli

import (
	"context"
	"testing"

	"github.com/jetpool/jetpool/task"
)

// textArgs has json tags only, as a program's own input type often has.
type textArgs struct {
	Text  string `json:"text"`
	Count int    `json:"count,omitempty"`
}

// TestTypedInputHonoursJSONTags: JSON decoded into a known input type keeps
// the fields its json tags name, and the value reaches a worker, which
// decodes the msgpack into the same type, whole; unknown fields and wrong
// types are refused in words.
func TestTypedInputHonoursJSONTags(t *testing.T) {
	echo := task.New[textArgs, string]("echo-text")
	decode := typedInput(echo)
	v, err := decode([]byte(`{"text": "a b c", "count": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	// What a worker's handler for the kind decodes, from the typed path and
	// from the raw one, for kinds whose type the CLI does not know.
	reg := task.NewRegistry()
	got := make(chan textArgs, 2)
	task.Handle(reg, echo, func(_ context.Context, in textArgs) (string, error) { got <- in; return "", nil })
	h, _ := reg.Lookup(echo.Kind())
	untyped, err := parseJSON([]byte(`{"text": "a b c", "count": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	for path, in := range map[string]any{"typed": v, "raw": untyped} {
		raw, err := task.New[any, any](echo.Kind()).Codec().EncodeIn(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.CallRaw(t.Context(), raw); err != nil {
			t.Fatalf("%s path: the worker refused %x: %v", path, raw, err)
		}
		if g := <-got; g != (textArgs{Text: "a b c", Count: 2}) {
			t.Fatalf("%s path: the worker decodes %+v; want the text and count given", path, g)
		}
	}

	for in, want := range map[string]string{
		`{"text": "a", "colour": 1}`: `echo-text takes an object with the fields "text", "count", which has no field "colour"`,
		`{"text": 5}`:                `echo-text takes an object with the fields "text", "count": its "text" is a string, got a number`,
		`{"count": 1.5}`:             `echo-text takes an object with the fields "text", "count": its "count" is an integer, got the number 1.5`,
		`"hello"`:                    `echo-text takes an object with the fields "text", "count", got a string`,
		`hello`:                      `echo-text takes an object with the fields "text", "count", got a string`,
		`[1]`:                        `echo-text takes an object with the fields "text", "count", got an array`,
		`{"text": "a"} {}`:           `more than one JSON value`,
		`{"text": `:                  `not JSON: it ends too soon`,
	} {
		if _, err := decode([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
