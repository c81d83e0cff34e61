/* Errors and logging: the FERRY_ERROR domain and code mapping. */
#include <ferry/ferry.h>

static void
test_codes_map_to_gerror(void)
{
  GError *error = NULL;
  gboolean ret = ferry_set_error(&error, FERRY_ERR_UNSAFE_PATH, "bad path %s", "../x");
  g_assert_false(ret);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_cmpstr(error->message, ==, "bad path ../x");
  g_clear_error(&error);

  /* NULL error pointer is allowed and still returns FALSE */
  g_assert_false(ferry_set_error(NULL, FERRY_ERR_IO, "ignored"));
}

static void
test_every_code_has_text(void)
{
  for (int code = FERRY_ERR_INVALID; code >= FERRY_ERR_AMBIGUOUS; code--)
    g_assert_cmpstr(ferry_strerror(code), !=, "unknown error");
  g_assert_cmpstr(ferry_strerror(-1000), ==, "unknown error");
  g_assert_cmpstr(ferry_strerror(0), ==, "success");
}

static void
test_version(void)
{
  g_assert_nonnull(ferry_version());
  g_assert_true(g_regex_match_simple("^[0-9]+\\.[0-9]+\\.[0-9]+$", ferry_version(), 0, 0));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/error/codes-map-to-gerror", test_codes_map_to_gerror);
  g_test_add_func("/core/error/every-code-has-text", test_every_code_has_text);
  g_test_add_func("/core/version/format", test_version);
  return g_test_run();
}
