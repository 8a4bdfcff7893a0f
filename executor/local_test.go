package executor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
)

func TestLocalConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		ex, err := executor.NewLocal(cfg.Registry, executor.LocalMaxWorkers(cfg.Workers), executor.LocalRetry(cfg.Retry))
		if err != nil {
			t.Fatal(err)
		}
		return ex
	})
}

func TestLocalUnknownKind(t *testing.T) {
	ex, err := executor.NewLocal(task.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background(), true, false)
	if _, err := executor.Submit(t.Context(), ex, executortest.Square, executortest.Num{N: 1}); !errors.Is(err, executor.ErrUnknownKind) {
		t.Fatalf("Submit of an unregistered kind: %v, want ErrUnknownKind", err)
	}
}

func TestLocalInvalidOption(t *testing.T) {
	if _, err := executor.NewLocal(task.NewRegistry(), executor.LocalMaxWorkers(0)); !errors.Is(err, executor.ErrInvalidOption) {
		t.Fatalf("LocalMaxWorkers(0): %v, want ErrInvalidOption", err)
	}
}
