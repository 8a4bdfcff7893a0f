package task_test

import (
	"context"
	"fmt"

	"github.com/jetpool/jetpool/task"
)

func Example() {
	// Declared once, imported by producers and workers.
	greet := task.New[string, string]("greet")

	// A worker's registry maps kinds to handlers.
	reg := task.NewRegistry()
	task.Handle(reg, greet, func(ctx context.Context, name string) (string, error) {
		return "hello, " + name, nil
	})
	h, _ := reg.Lookup(greet.Kind())
	out, err := h.Call(context.Background(), "ada")
	fmt.Println(out, err, reg.Kinds())
	// Output: hello, ada <nil> [greet]
}
