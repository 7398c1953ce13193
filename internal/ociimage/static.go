package ociimage

import (
	"debug/elf"
	"errors"
	"fmt"
)

// ErrNotStatic is wrapped by CheckStatic's error for a program that needs a
// dynamic loader or shared libraries: it would not run in an image that has
// nothing but the program.
var ErrNotStatic = errors.New("not statically linked")

// CheckStatic returns nil when the ELF program at path is statically linked:
// no interpreter (PT_INTERP) and no shared libraries (DT_NEEDED).
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing is lost if closing fails
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("check %s: %w: it names a dynamic loader (build it with CGO_ENABLED=0)", path, ErrNotStatic)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("check %s: %w: it needs %v", path, ErrNotStatic, libs)
	}
	return nil
}
