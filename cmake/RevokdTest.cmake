# revokd_add_test(NAME SOURCES file... [LIBS lib...] [TIMEOUT seconds]
#                 [LABELS label...])
#
# Builds one cmocka test program and registers it with ctest under NAME, with a
# timeout (default 60 s) so that a hung test fails instead of stalling CI.
# Every test gets the label "unit" unless LABELS says otherwise. Time limits
# are multiplied by REVOKD_TEST_TIMEOUT_SCALE (scripts/memcheck runs the
# tests under valgrind, tens of times slower).
set(REVOKD_TEST_TIMEOUT_SCALE 1 CACHE STRING
	"multiplier of every test's time limit")

function(revokd_add_test name)
	cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
	if(NOT T_TIMEOUT)
		set(T_TIMEOUT 60)
	endif()
	if(NOT T_LABELS)
		set(T_LABELS unit)
	endif()
	add_executable(${name} ${T_SOURCES})
	target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
	target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
	add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
	math(EXPR T_TIMEOUT "${T_TIMEOUT} * ${REVOKD_TEST_TIMEOUT_SCALE}")
	set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
		LABELS "${T_LABELS}")
endfunction()
