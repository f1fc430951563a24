# Installation layout and the Debian package (cpack -G DEB): the app, the command-line tool, the
# bundled demo (model, SAE, corpus sample), a desktop entry, an icon and AppStream metadata.
include(GNUInstallDirs)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/demo/model ${PROJECT_SOURCE_DIR}/data/demo/sae
        ${PROJECT_SOURCE_DIR}/data/demo/corpus
        DESTINATION ${CMAKE_INSTALL_DATADIR}/monoscope/demo)
install(FILES ${PROJECT_SOURCE_DIR}/data/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/monoscope/demo)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/monoscope.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
install(FILES ${PROJECT_SOURCE_DIR}/resources/icons/monoscope.svg
        DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/io.monoscope.Monoscope.metainfo.xml DESTINATION ${CMAKE_INSTALL_DATADIR}/metainfo)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME monoscope)
set(CPACK_PACKAGE_VENDOR "Monoscope")
set(CPACK_PACKAGE_CONTACT "Monoscope maintainers <maintainers@monoscope.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Sparse autoencoder feature browser and steering tool for language models")
set(CPACK_PACKAGE_INSTALL_DIRECTORY monoscope)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# Library dependencies come from dpkg-shlibdeps; the OpenMP BLAS is loaded by LibTorch at run
# time (the reference BLAS is about 15x slower), so it is declared by hand.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0-openmp")
set(CPACK_STRIP_FILES ON)
include(CPack)
