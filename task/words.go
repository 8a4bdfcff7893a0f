package task

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// jsonStructs is the struct tag msgpack falls back to for a field without a
// msgpack tag, on every side: a struct written for JSON, with json tags
// only, takes the same field names from a Go producer as from JSON given
// to the submit CLI, where {"text": "a b c"} fills the field tagged
// json:"text". A decoded input naming a field its struct does not have is
// refused, as a mistyped name would otherwise leave the field empty.
const jsonStructs = "json"

// msgpackCode finds the two messages of msgpack's decoder that name the code
// it met and what it was decoding.
var msgpackCode = regexp.MustCompile(`^msgpack: (?:invalid|unexpected) code=([0-9a-f]+) decoding (.+)$`)

// inWords rewrites a msgpack decoding error for a value of type want in
// words: what was expected and what was given, instead of a msgpack code.
// Other errors are returned as they are.
func inWords(err error, want reflect.Type) error {
	m := msgpackCode.FindStringSubmatch(err.Error())
	if m == nil {
		if strings.HasPrefix(err.Error(), "msgpack: unknown field") {
			return fmt.Errorf("%s has no field %s", typeWords(want), strings.TrimPrefix(err.Error(), "msgpack: unknown field "))
		}
		return err
	}
	code, perr := strconv.ParseUint(m[1], 16, 8)
	if perr != nil {
		return err
	}
	return errors.New("want " + typeWords(want) + wanted(m[2], want) + ", got " + codeWords(byte(code)))
}

// wanted names what the decoder was reading when it is not want itself (a
// field or element of it).
func wanted(decoding string, want reflect.Type) string {
	var what string
	switch decoding {
	case "int64", "uint64":
		what = "an integer"
	case "float32", "float64":
		what = "a number"
	case "bool":
		what = "true or false"
	case "string/bytes length":
		what = "a string"
	case "array length":
		what = "a list"
	case "map length":
		what = "an object"
	default:
		return ""
	}
	if strings.HasPrefix(typeWords(want), what) {
		return ""
	}
	return " (" + what + " in it)"
}

// typeWords names a Go type as a person reading JSON would.
func typeWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes"
		}
		return "a list"
	case reflect.Map:
		return "an object"
	case reflect.Struct:
		return "an object (" + t.String() + ")"
	case reflect.Pointer:
		return typeWords(t.Elem())
	}
	return t.String()
}

// codeWords names what a msgpack value starting with code is.
func codeWords(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0, c >= 0xcc && c <= 0xd3:
		return "an integer"
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		return "an object"
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		return "a list"
	case c >= 0xa0 && c <= 0xbf, c >= 0xd9 && c <= 0xdb:
		return "a string"
	case c == 0xc0:
		return "null"
	case c == 0xc2 || c == 0xc3:
		return "true or false"
	case c >= 0xc4 && c <= 0xc6:
		return "bytes"
	case c == 0xca || c == 0xcb:
		return "a number with a fraction"
	}
	return fmt.Sprintf("msgpack code %#x", c)
}
