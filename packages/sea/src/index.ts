export { ExecutableCopy, EXECUTABLE_LIBRARIES_DIR } from './executable-copy.js';
export { readElfLoading, type ElfLoading } from './elf.js';
