#pragma once
// Symbols are hidden by default (see CMakeLists.txt); KILN_API marks the public ones.
#define KILN_API __attribute__((visibility("default")))
