/* A main() for fuzz targets built without libFuzzer: feeds every file
 * named on the command line (or found in a named directory) to
 * LLVMFuzzerTestOneInput once. Used to replay seeds and crash files. */
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path)
{
  char *data;
  gsize len;
  GError *error = NULL;

  if (!g_file_get_contents(path, &data, &len, &error)) {
    fprintf(stderr, "%s\n", error->message);
    g_error_free(error);
    return 1;
  }
  LLVMFuzzerTestOneInput((const uint8_t *)data, len);
  g_free(data);
  return 0;
}

int
main(int argc, char **argv)
{
  int failures = 0, count = 0;

  for (int i = 1; i < argc; i++) {
    if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
      GDir *dir = g_dir_open(argv[i], 0, NULL);
      const char *name;
      while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
        char *path = g_build_filename(argv[i], name, NULL);
        failures += run_file(path);
        count++;
        g_free(path);
      }
      if (dir != NULL)
        g_dir_close(dir);
    } else {
      failures += run_file(argv[i]);
      count++;
    }
  }
  printf("replayed %d inputs, %d unreadable\n", count, failures);
  return failures == 0 && count > 0 ? 0 : 1;
}
