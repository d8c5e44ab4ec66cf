# cmake -DINPUT=page.html -DOUTPUT=page.cc -P embed-page.cmake: the page as
# td::kHtmlReportPage, a C++ string (hex bytes: no quoting rules to get wrong).
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
string(REGEX REPLACE "(([^,]*,){32})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT} "// Generated from src/html_report.html by tools/embed-page.cmake.\nnamespace td {\nstatic const char kPageBytes[] = {\n${bytes}'\\0'};\nextern const char* const kHtmlReportPage;\nconst char* const kHtmlReportPage = kPageBytes;\n}  // namespace td\n")
