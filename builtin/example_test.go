package builtin_test

import (
	"fmt"

	"github.com/jetpool/jetpool/builtin"
)

// FileName says which file in Dest a task will write, so a caller can see
// before submitting that two of them would collide.
func ExampleCopyArgs_FileName() {
	name, _ := builtin.CopyArgs{Src: "/data/in/a.csv", Dest: "/data/out"}.FileName()
	fmt.Println(name)
	name, _ = builtin.DownloadArgs{URL: "https://example.org/files/b.csv?v=2", Dest: "/data/in"}.FileName()
	fmt.Println(name)
	_, err := builtin.DownloadArgs{URL: "https://example.org/", Dest: "/data/in"}.FileName()
	fmt.Println(err)
	// Output:
	// a.csv
	// b.csv
	// download: cannot name a file "/"
}
